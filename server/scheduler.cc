#include "server/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace linvideo::server {

std::string BucketKey::ToString() const {
  return absl::StrFormat("%s@v%d/%dx%dx%d/%s/%s", model, version, width, height, frames,
                         core::params::SamplerKindName(sampler), cfg ? "cfg" : "nocfg");
}

absl::Status Scheduler::Enqueue(SchedEntry* entry, bool over_limit) {
  const int q = queued();
  if (q >= options_.max_queue && !over_limit) {
    return absl::ResourceExhaustedError(absl::StrCat("queue full: ", q, " requests queued, limit ",
                                                     options_.max_queue, "; retry later"));
  }
  entry->seq = next_seq_++;
  entry->phase = RequestPhase::kQueued;
  entries_.push_back(entry);
  return absl::OkStatus();
}

int64_t Scheduler::Budget(const SchedEntry* e) const {
  const int64_t own = e->token_budget > 0 ? e->token_budget : options_.token_budget;
  if (step_limits_.empty()) return own;  // the common case: no string key built
  const int64_t limit = StepLimit(e->key);
  if (limit <= 0) return own;
  return own > 0 ? std::min(own, limit) : limit;
}

int64_t Scheduler::LimitSteps(const BucketKey& key, int64_t tokens) {
  StepLimitState& l = step_limits_[key.ToString()];
  tokens = std::max<int64_t>(tokens, 1);
  // After a lift the limit that held is still known: a failed probe goes straight back to it.
  l.tokens = l.tokens > 0 ? std::min(l.tokens, tokens) : tokens;
  l.lifted = false;
  l.clean_steps = 0;
  l.model = key.model;
  l.last_stepped = last_plan_;
  return l.tokens;
}

int64_t Scheduler::StepLimit(const BucketKey& key) const {
  const auto it = step_limits_.find(key.ToString());
  return it == step_limits_.end() || it->second.lifted ? 0 : it->second.tokens;
}

bool Scheduler::CleanStep(const BucketKey& key) {
  if (step_limits_.empty()) return false;
  const auto it = step_limits_.find(key.ToString());
  if (it == step_limits_.end() || ++it->second.clean_steps < options_.limit_probe_steps) {
    return false;
  }
  if (it->second.lifted) {  // as many clean steps again without it: forgotten
    step_limits_.erase(it);
    return false;
  }
  it->second.lifted = true;
  it->second.clean_steps = 0;
  return true;
}

double Scheduler::Score(const SchedEntry* e, absl::Time now) const {
  return e->priority * absl::ToDoubleSeconds(options_.starvation_age) +
         absl::ToDoubleSeconds(now - e->enqueued);
}

bool Scheduler::Before(const SchedEntry* a, const SchedEntry* b, absl::Time now) const {
  const double sa = Score(a, now), sb = Score(b, now);
  if (sa != sb) return sa > sb;
  return a->seq < b->seq;
}

Plan Scheduler::Next(absl::Time now, bool may_start) {
  Plan plan;
  last_plan_ = now;
  // Learned limits of buckets that have not stepped for a while are forgotten (a retired
  // checkpoint, a shape nobody asks for any more); the caller clears their gauges.
  for (auto it = step_limits_.begin(); it != step_limits_.end();) {
    if (now - it->second.last_stepped > kForgetLimitAfter) {
      if (!it->second.lifted) plan.forgotten_limits.push_back({it->second.model, it->first});
      it = step_limits_.erase(it);
    } else {
      ++it;
    }
  }
  // Drop cancelled and expired entries first: they never start and stop within one step.
  std::vector<SchedEntry*> live;
  live.reserve(entries_.size());
  for (SchedEntry* e : entries_) {
    if (e->cancelled || e->deadline <= now) {
      plan.dropped.push_back(e);
    } else {
      live.push_back(e);
    }
  }
  entries_.swap(live);
  if (entries_.empty()) return plan;

  // Group into buckets (few entries: linear scans are fine).
  struct Bucket {
    const BucketKey* key;
    std::vector<SchedEntry*> running, queued;
    SchedEntry* best = nullptr;
    int64_t budget = 0;  // its step budget (Budget: the same for all its entries), 0: unlimited
  };
  std::vector<Bucket> buckets;
  for (SchedEntry* e : entries_) {
    Bucket* b = nullptr;
    for (Bucket& c : buckets) {
      if (*c.key == e->key) b = &c;
    }
    if (b == nullptr) {
      buckets.push_back(Bucket{&e->key, {}, {}, nullptr, Budget(e)});
      b = &buckets.back();
    }
    (e->running() ? b->running : b->queued).push_back(e);
    if (b->best == nullptr || Before(e, b->best, now)) b->best = e;
  }

  // Running requests hold their state (latents, every layer's text K/V) between steps whether or
  // not their bucket steps now: across all buckets at most max_batch run, the number the memory
  // budget sized. At the cap only buckets with running requests may step (they finish and free
  // slots); others wait.
  int running_total = 0;
  for (const Bucket& b : buckets) running_total += static_cast<int>(b.running.size());
  const bool full = running_total >= options_.max_batch || !may_start;
  Bucket* chosen = nullptr;
  for (Bucket& b : buckets) {
    if (full && b.running.empty()) continue;
    bool ready = !b.running.empty() || static_cast<int>(b.queued.size()) >= options_.max_batch;
    int64_t tokens = 0;
    absl::Time oldest = absl::InfiniteFuture();
    for (SchedEntry* e : b.queued) {
      tokens += e->tokens;
      oldest = std::min(oldest, e->enqueued);
    }
    if (b.budget > 0 && tokens >= b.budget) ready = true;
    if (!b.queued.empty() && now - oldest >= options_.max_queue_delay) ready = true;
    if (!ready) {
      plan.wake_at = std::min(plan.wake_at, oldest + options_.max_queue_delay);
      continue;
    }
    // When nothing queued in it can start (at the cap; its running requests over its budget; no
    // queued one fits beside them), a bucket competes with its running requests only: a
    // high-priority request waiting in it must not hold back older running ones elsewhere.
    if (!b.running.empty()) {
      int64_t running_tokens = 0;
      for (SchedEntry* e : b.running) running_tokens += e->tokens;
      bool can_start = !full && (b.budget <= 0 || running_tokens <= b.budget);
      if (can_start && b.budget > 0) {
        can_start = std::any_of(b.queued.begin(), b.queued.end(), [&](const SchedEntry* e) {
          return running_tokens + e->tokens <= b.budget;
        });
      }
      if (!can_start) {
        b.best = nullptr;
        for (SchedEntry* e : b.running) {
          if (b.best == nullptr || Before(e, b.best, now)) b.best = e;
        }
      }
    }
    if (chosen == nullptr || Before(b.best, chosen->best, now)) chosen = &b;
  }
  // Deadlines of waiting requests also need a timely plan.
  for (SchedEntry* e : entries_) plan.wake_at = std::min(plan.wake_at, e->deadline);
  if (chosen == nullptr) return plan;
  if (!step_limits_.empty()) {
    if (auto it = step_limits_.find(chosen->key->ToString()); it != step_limits_.end()) {
      it->second.last_stepped = now;
    }
  }

  int64_t tokens = 0;
  // Running requests over the bucket's budget (lowered by LimitSteps since they started) take
  // turns: the least recently stepped first, as many as fit, at least one.
  std::sort(chosen->running.begin(), chosen->running.end(),
            [](const SchedEntry* a, const SchedEntry* b) {
              return a->turn != b->turn ? a->turn < b->turn : a->seq < b->seq;
            });
  const int64_t budget = chosen->budget;
  bool left_out = false;
  for (SchedEntry* e : chosen->running) {
    if (budget > 0 && !plan.batch.empty() && tokens + e->tokens > budget) {
      left_out = true;
      continue;
    }
    e->turn = ++turns_;
    plan.batch.push_back(e);
    tokens += e->tokens;
  }
  std::sort(chosen->queued.begin(), chosen->queued.end(),
            [&](const SchedEntry* a, const SchedEntry* b) { return Before(a, b, now); });
  // Slots left under the cap on running requests across buckets (which the batch, holding only
  // running ones so far, cannot exceed either).
  // Nothing joins a bucket whose running requests do not all fit its budget.
  const int room = may_start && !left_out ? options_.max_batch - running_total : 0;
  int admitted = 0;
  for (SchedEntry* e : chosen->queued) {
    if (admitted >= room) break;
    // Always admit into an empty batch so one request above the budget cannot wedge the queue
    // (the engine refuses those at validation anyway).
    if (budget > 0 && !plan.batch.empty() && tokens + e->tokens > budget) continue;
    e->phase = RequestPhase::kRunning;
    e->turn = ++turns_;
    ++admitted;
    tokens += e->tokens;
    plan.admit.push_back(e);
    plan.batch.push_back(e);
  }
  return plan;
}

void Scheduler::Finish(SchedEntry* entry) {
  entries_.erase(std::remove(entries_.begin(), entries_.end(), entry), entries_.end());
}

int Scheduler::Position(const SchedEntry* entry, absl::Time now) const {
  if (entry->running()) return 0;
  bool found = false;
  int ahead = 0;
  for (const SchedEntry* e : entries_) {
    if (e == entry) found = true;
    if (e != entry && !e->running() && Before(e, entry, now)) ++ahead;
  }
  return found ? ahead + 1 : 0;
}

int Scheduler::queued() const {
  int n = 0;
  for (const SchedEntry* e : entries_) n += e->running() ? 0 : 1;
  return n;
}

std::array<int, kNumPriorities> Scheduler::QueuedByPriority() const {
  std::array<int, kNumPriorities> out{};
  for (const SchedEntry* e : entries_) {
    if (!e->running()) ++out[std::clamp(e->priority, 0, kNumPriorities - 1)];
  }
  return out;
}

}  // namespace linvideo::server
