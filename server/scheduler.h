#pragma once
// Scheduler: turns queued and running requests into one step plan at a time. No tensors, no
// threads: the engine calls it under its own lock; unit-tested with fake executors.
//
// Policy (see docs/serving.md):
//  * Requests are grouped into buckets (model + checkpoint version, shape, sampler, guidance
//  on/off);
//    only one bucket steps per plan, and everything in a batch shares the latent shape.
//  * A bucket is "ready" when it already has running requests, or its queue reaches max_batch or
//    the token budget, or its oldest request has waited max_queue_delay (batch held open until
//    then).
//  * Among ready buckets the one holding the highest-scoring request wins; score =
//    priority_rank * starvation_age + time waited, so a low-priority request outranks a fresh
//    high-priority one after waiting `2 * starvation_age` (no starvation). Ties: oldest first.
//    A bucket where nothing queued can start (max_batch running, no start allowed, or no queued
//    request fits its budget beside the running ones) counts its running requests only.
//  * Queued requests join the chosen bucket's running batch at step boundaries, by score, while the
//    batch stays within max_batch and token_budget, and the requests running in all buckets
//    (each holds its state between steps) within max_batch; at that cap only buckets with running
//    requests step.
//  * Cancelled or expired (deadline passed) entries are dropped at the next plan, before anything
//    runs, so expired requests never start and cancelled ones stop within one step.
//  * A bucket's step budget can be lowered while its requests run (LimitSteps: a batch ran out
//    of device memory). A bucket whose running requests exceed it steps as many as fit, the
//    least recently stepped first (they take turns), and admits nothing until they fit again.
//    After limit_probe_steps clean steps the limit is lifted (CleanStep), so a passing shortage
//    does not lower throughput for good; if it was not passing, the next batch fails and the
//    limit that held is back at once.
// Ownership: entries are owned by the caller and must outlive their time in the scheduler (until
// they are returned in Plan::dropped or passed to Finish).

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/params/sampler_kind.h"
#include "server/request_phase.h"

namespace linvideo::server {

// Requests step together only when all of these match.
struct BucketKey {
  std::string model;
  int64_t version = 0;
  int64_t width = 0, height = 0, frames = 0;
  core::params::SamplerKind sampler = core::params::SamplerKind::kUniPC;
  bool cfg = false;  // classifier-free guidance on (core::params::UsesCfg)

  bool operator==(const BucketKey& o) const {
    return model == o.model && version == o.version && width == o.width && height == o.height &&
           frames == o.frames && sampler == o.sampler && cfg == o.cfg;
  }
  std::string ToString() const;
};

inline constexpr int kNumPriorities = 3;  // rank 0 = low, 1 = normal, 2 = high

// One request as the scheduler sees it. `owner` is the caller's object for this entry (the
// engine's ServeRequest), so a plan maps back to requests without lookups; the scheduler never
// reads it.
struct SchedEntry {
  BucketKey key;
  int priority = 1;    // rank in [0, kNumPriorities)
  int64_t tokens = 1;  // cost against the token budget (latent tokens x CFG passes)
  // The step budget of this request's model (the same for its whole bucket); 0: the scheduler's
  // SchedulerOptions::token_budget.
  int64_t token_budget = 0;
  absl::Time enqueued;
  absl::Time deadline = absl::InfiniteFuture();
  void* owner = nullptr;
  // Maintained by the scheduler: kQueued or kRunning while the scheduler holds the entry.
  uint64_t seq = 0;
  // When a plan last took it (0: never): running requests over a lowered budget take turns.
  uint64_t turn = 0;
  RequestPhase phase = RequestPhase::kQueued;
  bool cancelled = false;
  bool running() const { return phase == RequestPhase::kRunning; }
};

struct SchedulerOptions {
  int max_batch = 4;
  int64_t token_budget = 0;  // per step; 0 = unlimited
  int max_queue = 64;        // queued (not running) requests
  absl::Duration max_queue_delay = absl::Milliseconds(20);
  absl::Duration starvation_age = absl::Seconds(30);
  int limit_probe_steps = 200;  // clean steps of a bucket before LimitSteps' limit is lifted
};

struct Plan {
  std::vector<SchedEntry*> dropped;  // cancelled/expired, removed from the scheduler
  std::vector<SchedEntry*> admit;    // queued -> running now (the engine must start them)
  std::vector<SchedEntry*> batch;    // everything to step now (running ones + admit)
  absl::Time wake_at = absl::InfiniteFuture();  // with an empty batch: when to plan again
  // (model, bucket) of learned step limits forgotten because the bucket did not step for
  // Scheduler::kForgetLimitAfter (LimitSteps).
  std::vector<std::pair<std::string, std::string>> forgotten_limits;
  bool empty() const { return batch.empty(); }
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerOptions& options) : options_(options) {}

  const SchedulerOptions& options() const { return options_; }
  // Queues `entry`. RESOURCE_EXHAUSTED (with the limit) when max_queue requests are queued.
  // `over_limit`: accept even when max_queue requests are queued (requests recovered at start).
  absl::Status Enqueue(SchedEntry* entry, bool over_limit = false);
  // Marks `entry` cancelled; it is returned in the next plan's `dropped`.
  void Cancel(SchedEntry* entry) { entry->cancelled = true; }
  // Drops cancelled/expired entries, then picks the next batch (possibly empty). With
  // `may_start` false nothing new starts (the caller's decode backlog is full); running requests
  // still step.
  Plan Next(absl::Time now, bool may_start = true);
  // Whether `entry` waits in the queue (held, not started).
  bool Queued(const SchedEntry* entry) const {
    return !entry->running() &&
           std::find(entries_.begin(), entries_.end(), entry) != entries_.end();
  }
  // Removes an entry that finished (or failed); a no-op for one the scheduler does not hold.
  void Finish(SchedEntry* entry);
  // Holds the steps of bucket `key` to at most `tokens` (>= 1), below its entries' own budgets:
  // a batch of more did not fit the device. Lowers an existing limit, never raises it (after a
  // lift the one that held is restored at once, or lower); restarts its count of clean steps.
  // Returns the limit in force. A bucket that does not step for kForgetLimitAfter loses it.
  int64_t LimitSteps(const BucketKey& key, int64_t tokens);
  // The limit in force for bucket `key` (0: none, or lifted).
  int64_t StepLimit(const BucketKey& key) const;
  // A step of bucket `key` succeeded as one batch. Returns true when that lifted its limit
  // (options().limit_probe_steps clean steps since it was set); as many clean steps more
  // forget it.
  bool CleanStep(const BucketKey& key);
  static constexpr absl::Duration kForgetLimitAfter = absl::Minutes(10);

  // 1-based queue position (1 = next to start); 0 when running or unknown.
  int Position(const SchedEntry* entry, absl::Time now) const;
  int queued() const;
  int running() const { return size() - queued(); }
  int size() const { return static_cast<int>(entries_.size()); }  // queued + running
  // Queued and running entries, in arrival order.
  const std::vector<SchedEntry*>& entries() const { return entries_; }
  std::array<int, kNumPriorities> QueuedByPriority() const;
  bool idle() const { return entries_.empty(); }

 private:
  double Score(const SchedEntry* e, absl::Time now) const;
  // A bucket's step budget (0: unlimited): its entries' model's, else the scheduler's, lowered to
  // the limit LimitSteps learned for the bucket.
  int64_t Budget(const SchedEntry* e) const;
  bool Before(const SchedEntry* a, const SchedEntry* b, absl::Time now) const;

  SchedulerOptions options_;
  std::vector<SchedEntry*> entries_;  // queued and running, in arrival order
  uint64_t next_seq_ = 1;
  uint64_t turns_ = 0;    // entries put in a batch so far (SchedEntry::turn)
  absl::Time last_plan_;  // `now` of the latest Next
  // LimitSteps' limits and the clean steps since, by BucketKey::ToString().
  struct StepLimitState {
    int64_t tokens = 0;
    int clean_steps = 0;
    bool lifted = false;  // probing above it; a failure restores it
    std::string model;
    absl::Time last_stepped;
  };
  std::map<std::string, StepLimitState> step_limits_;
};

}  // namespace linvideo::server
