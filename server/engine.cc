#include "server/engine.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "media/png.h"
#include "media/video_encoder.h"
#include "server/log.h"

namespace linvideo::server {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  }
  return true;
}

}  // namespace

int64_t LatentTokens(const GenerationParams& p) {
  return ((p.frames - 1) / 4 + 1) * (p.height / 16) * (p.width / 16);
}
int CfgPasses(const GenerationParams& p) { return p.guidance > 1.0 ? 2 : 1; }

Engine::Engine(const ServerConfig& config, ModelRegistry* registry, Metrics* metrics)
    : config_(config),
      registry_(registry),
      metrics_(metrics),
      compute_mu_(registry->compute_mutex()),
      scheduler_([&] {
        SchedulerOptions o;
        o.max_batch = config.scheduler.max_batch;
        o.token_budget = config.scheduler.token_budget;
        o.max_queue = config.scheduler.max_queue;
        o.max_queue_delay = absl::Milliseconds(config.scheduler.max_queue_delay_ms);
        o.starvation_age = absl::Seconds(config.scheduler.starvation_age_s);
        return o;
      }()) {
  engine_thread_ = std::thread([this] { Loop(); });
  for (int i = 0; i < config.limits.workers; ++i) workers_.emplace_back([this] { RunWorker(); });
}

Engine::~Engine() { Stop(); }

absl::StatusOr<std::shared_ptr<ServeRequest>> Engine::Submit(const SubmitOptions& o) {
  if (draining_) return absl::UnavailableError("server is draining: no new work is accepted");
  if (paused_) return absl::UnavailableError("admission is paused by the operator; retry later");
  if (!o.request_id.empty()) {
    if (!ValidId(o.request_id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("request_id '", o.request_id,
                       "' is not allowed: use 1-64 characters from [A-Za-z0-9._-]"));
    }
    absl::MutexLock lock(&mu_);
    if (auto it = requests_.find(o.request_id); it != requests_.end()) {
      if (o.streaming) {
        return absl::AlreadyExistsError(
            absl::StrCat("request_id '", o.request_id, "' already exists; use Get to follow it"));
      }
      return it->second;
    }
  }
  if (o.params.prompt.empty()) return absl::InvalidArgumentError("prompt must not be empty");
  if (static_cast<int>(o.params.prompt.size()) > config_.limits.max_prompt_chars ||
      static_cast<int>(o.params.negative_prompt.size()) > config_.limits.max_prompt_chars) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt is ", std::max(o.params.prompt.size(), o.params.negative_prompt.size()),
        " characters: at most ", config_.limits.max_prompt_chars, " are allowed"));
  }
  if (o.fps < 1 || o.fps > 60) {
    return absl::InvalidArgumentError(
        absl::StrCat("fps=", o.fps, " is not allowed: use 1..60 (0: 16)"));
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = registry_->Get(o.model);
  if (!model.ok()) return model.status();
  absl::StatusOr<GenerationParams> params = (*model)->executor->Resolve(o.params);
  if (!params.ok()) return params.status();
  const int64_t tokens = LatentTokens(*params) * CfgPasses(*params);
  const int64_t cost = tokens * params->steps;
  if (config_.limits.max_cost > 0 && cost > config_.limits.max_cost) {
    return absl::ResourceExhaustedError(
        absl::StrCat("request cost ", cost,
                     " (latent tokens x steps x CFG passes) exceeds the server budget of ",
                     config_.limits.max_cost, "; reduce width, height, frames or steps"));
  }
  if (config_.scheduler.token_budget > 0 && tokens > config_.scheduler.token_budget) {
    return absl::ResourceExhaustedError(absl::StrCat("request needs ", tokens,
                                                     " tokens per step; the step budget is ",
                                                     config_.scheduler.token_budget));
  }

  auto r = std::make_shared<ServeRequest>();
  r->id = o.request_id.empty() ? absl::StrCat("r", absl::ToUnixMicros(absl::Now()), "-", next_id_++)
                               : o.request_id;
  r->params = *params;
  r->output = o.output;
  r->fps = o.fps;
  r->created = absl::Now();
  r->model = *model;
  r->streaming = o.streaming;
  r->entry.key = BucketKey{
      (*model)->name,         (*model)->version,
      params->width,          params->height,
      params->frames,         params->sampler == core::pipeline::SamplerKind::kEuler ? 1 : 0,
      CfgPasses(*params) == 2};
  r->entry.priority = std::clamp(o.priority, 0, kNumPriorities - 1);
  r->entry.tokens = tokens;
  r->entry.enqueued = r->created;
  r->entry.deadline = o.deadline;

  absl::MutexLock lock(&mu_);
  if (!o.request_id.empty() && requests_.count(o.request_id)) {  // lost a race with the same id
    if (o.streaming)
      return absl::AlreadyExistsError(
          absl::StrCat("request_id '", o.request_id, "' already exists"));
    return requests_[o.request_id];
  }
  absl::Status queued = scheduler_.Enqueue(&r->entry);
  if (!queued.ok()) return queued;
  requests_[r->id] = r;
  by_entry_[&r->entry] = r.get();
  {
    absl::MutexLock rl(&r->mu);
    r->position = scheduler_.Position(&r->entry, r->created);
    r->Push({ServeEvent::kQueued, r->position});
  }
  LV_LOG(INFO) << "request=" << r->id << " queued model=" << r->model->name << "@v"
               << r->model->version << " " << r->entry.key.ToString() << " steps=" << params->steps
               << " priority=" << r->entry.priority;
  wake_ = true;
  return r;
}

absl::Status Engine::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = requests_.find(id);
  if (it == requests_.end())
    return absl::NotFoundError(absl::StrCat("no request '", id, "' (unknown or expired)"));
  if (by_entry_.count(&it->second->entry)) {
    scheduler_.Cancel(&it->second->entry);
    wake_ = true;
  }
  return absl::OkStatus();
}

std::shared_ptr<ServeRequest> Engine::Find(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->second;
}

void Engine::Pause(bool paused) { paused_ = paused; }
void Engine::Drain() { draining_ = true; }

int Engine::Outstanding() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(by_entry_.size()) + encoding_;
}

int Engine::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return by_entry_.empty() && encoding_ == 0;
  };
  mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
  return static_cast<int>(by_entry_.size()) + encoding_;
}

void Engine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
    wake_ = true;
  }
  if (engine_thread_.joinable()) engine_thread_.join();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void Engine::Fail(ServeRequest* r, const absl::Status& status) {
  absl::MutexLock rl(&r->mu);
  if (r->Terminal()) return;
  r->phase = status.code() == absl::StatusCode::kCancelled ? Phase::kCancelled : Phase::kFailed;
  r->error = status;
  r->finished = absl::Now();
  r->Push({ServeEvent::kFailed});
  LV_LOG(INFO) << "request=" << r->id << " "
               << (r->phase == Phase::kCancelled ? "cancelled" : "failed") << ": " << status;
}

void Engine::PublishQueueState(absl::Time now) {
  for (auto& [entry, r] : by_entry_) {
    if (entry->running) continue;
    const int pos = scheduler_.Position(entry, now);
    absl::MutexLock rl(&r->mu);
    if (pos != r->position) {
      r->position = pos;
      r->Push({ServeEvent::kQueued, pos});
    }
  }
  if (metrics_ != nullptr) {
    const auto depth = scheduler_.QueuedByPriority();
    for (int p = 0; p < kNumPriorities; ++p) metrics_->SetQueueDepth(p, depth[p]);
    metrics_->SetRunning(scheduler_.running());
  }
}

void Engine::ExpireResults(absl::Time now) {
  const absl::Duration ttl = absl::Seconds(config_.limits.result_ttl_s);
  for (auto it = requests_.begin(); it != requests_.end();) {
    ServeRequest& r = *it->second;
    bool expired;
    {
      absl::MutexLock rl(&r.mu);
      expired = r.Terminal() && now - r.finished > ttl;
    }
    it = expired ? requests_.erase(it) : std::next(it);
  }
}

void Engine::Loop() {
  absl::Time last_expire = absl::Now();
  while (true) {
    std::vector<ServeRequest*> admitted, batch;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = absl::Now();
      if (stop_) {
        for (auto& [entry, r] : by_entry_) Fail(r, absl::UnavailableError("server shutting down"));
        by_entry_.clear();
        return;
      }
      if (now - last_expire > absl::Seconds(1)) {
        ExpireResults(now);
        last_expire = now;
      }
      Plan plan = scheduler_.Next(now);
      for (SchedEntry* e : plan.dropped) {
        ServeRequest* r = by_entry_[e];
        by_entry_.erase(e);
        r->state.reset();
        Fail(r, e->cancelled
                    ? absl::CancelledError("request cancelled")
                    : absl::DeadlineExceededError("request deadline passed before it finished"));
      }
      PublishQueueState(now);
      if (plan.empty()) {
        wake_ = false;
        auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wake_; };
        mu_.AwaitWithDeadline(absl::Condition(&woken),
                              std::min(plan.wake_at, now + absl::Seconds(1)));
        continue;
      }
      for (SchedEntry* e : plan.admit) admitted.push_back(by_entry_[e]);
      for (SchedEntry* e : plan.batch) batch.push_back(by_entry_[e]);
    }
    if (!admitted.empty()) StartAdmitted(admitted);
    std::vector<StepState*> states;
    std::vector<ServeRequest*> stepped;
    for (ServeRequest* r : batch) {
      if (r->state != nullptr) {
        states.push_back(r->state.get());
        stepped.push_back(r);
      }
    }
    if (states.empty()) continue;
    const absl::Time t0 = absl::Now();
    absl::Status st;
    {
      std::optional<absl::MutexLock> compute;
      if (!config_.limits.overlap_decode) compute.emplace(&compute_mu_);
      st = stepped[0]->model->executor->Step(states);
    }
    const double dt = absl::ToDoubleSeconds(absl::Now() - t0);
    int64_t tokens = 0;
    absl::MutexLock lock(&mu_);
    for (ServeRequest* r : stepped) {
      tokens += r->entry.tokens;
      if (!st.ok()) {
        scheduler_.Finish(&r->entry);
        by_entry_.erase(&r->entry);
        r->state.reset();
        Fail(r, absl::InternalError(absl::StrCat("denoising step failed: ", st.message())));
        continue;
      }
      const bool done = r->state->done();
      {
        absl::MutexLock rl(&r->mu);
        r->step = static_cast<int>(r->state->step());
        r->stats.compute_s += dt;
        r->stats.max_batch = std::max<int>(r->stats.max_batch, stepped.size());
        r->Push({ServeEvent::kProgress, r->step, static_cast<int>(r->state->total_steps())});
      }
      if (done) {
        scheduler_.Finish(&r->entry);
        by_entry_.erase(&r->entry);
        ++encoding_;
        work_.push_back(requests_[r->id]);
      }
    }
    if (metrics_ != nullptr && st.ok())
      metrics_->ObserveStep(static_cast<int>(stepped.size()), dt, tokens);
  }
}

void Engine::StartAdmitted(const std::vector<ServeRequest*>& admitted) {
  // One bucket per plan, so every admitted request shares the model version (and executor).
  std::vector<const GenerationParams*> params;
  for (ServeRequest* r : admitted) params.push_back(&r->params);
  const absl::Time t0 = absl::Now();
  absl::StatusOr<std::vector<std::unique_ptr<StepState>>> states;
  {
    std::optional<absl::MutexLock> compute;
    if (!config_.limits.overlap_decode) compute.emplace(&compute_mu_);
    states = admitted[0]->model->executor->Start(params);
  }
  const double dt = absl::ToDoubleSeconds(absl::Now() - t0);
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < admitted.size(); ++i) {
    ServeRequest* r = admitted[i];
    if (!states.ok()) {
      scheduler_.Finish(&r->entry);
      by_entry_.erase(&r->entry);
      Fail(r, absl::InternalError(
                  absl::StrCat("starting the request failed: ", states.status().message())));
      continue;
    }
    r->state = std::move((*states)[i]);
    r->started = t0;
    absl::MutexLock rl(&r->mu);
    r->phase = Phase::kRunning;
    r->position = 0;
    r->stats.queue_s = absl::ToDoubleSeconds(t0 - r->created);
    r->stats.compute_s += dt;
    r->Push({ServeEvent::kStarted, static_cast<int>(admitted.size())});
    LV_LOG(INFO) << "request=" << r->id << " started after " << r->stats.queue_s
                 << "s in a batch of " << admitted.size() << " new";
  }
}

void Engine::RunWorker() {
  while (true) {
    std::shared_ptr<ServeRequest> r;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !work_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (work_.empty()) return;  // stop_
      r = std::move(work_.front());
      work_.pop_front();
    }
    Encode(r);
    absl::MutexLock lock(&mu_);
    --encoding_;
  }
}

void Engine::Encode(std::shared_ptr<ServeRequest> r) {
  const absl::Time t0 = absl::Now();
  absl::StatusOr<media::VideoFrames> frames;
  {
    std::optional<absl::MutexLock> compute;
    if (!config_.limits.overlap_decode) compute.emplace(&compute_mu_);
    frames = r->model->executor->Decode(*r->state);
    r->state.reset();
  }
  const absl::Time t1 = absl::Now();
  std::vector<std::string> blobs;
  std::string mime;
  absl::Status st = frames.status();
  if (st.ok()) {
    if (r->output == OutputKind::kPngFrames) {
      auto pngs = media::EncodePngFrames(frames->View());
      st = pngs.status();
      if (pngs.ok()) blobs = std::move(*pngs);
      mime = "image/png";
    } else {
      media::EncodeOptions eo;
      eo.container =
          r->output == OutputKind::kWebm ? media::Container::kWebm : media::Container::kMp4;
      eo.fps = r->fps;
      auto video = media::EncodeVideo(frames->View(), eo);
      st = video.status();
      if (video.ok()) blobs.push_back(std::move(*video));
      mime = std::string(media::ContainerMimeType(eo.container));
    }
  }
  const absl::Time t2 = absl::Now();
  absl::MutexLock rl(&r->mu);
  if (r->Terminal()) return;
  if (!st.ok()) {
    r->phase = Phase::kFailed;
    r->error = absl::InternalError(absl::StrCat("decode/encode failed: ", st.message()));
    r->finished = t2;
    r->Push({ServeEvent::kFailed});
    return;
  }
  RequestStats& s = r->stats;
  s.decode_s = absl::ToDoubleSeconds(t1 - t0);
  s.encode_s = absl::ToDoubleSeconds(t2 - t1);
  s.total_s = absl::ToDoubleSeconds(t2 - r->created);
  for (size_t i = 0; i < blobs.size(); ++i) {
    s.video_bytes += blobs[i].size();
    for (size_t off = 0; off < blobs[i].size() || off == 0; off += kChunkBytes) {
      const bool last_piece = off + kChunkBytes >= blobs[i].size();
      r->Push({ServeEvent::kChunk, static_cast<int>(i), 0, blobs[i].substr(off, kChunkBytes),
               last_piece && i + 1 == blobs.size()});
      if (last_piece) break;
    }
  }
  r->result = std::move(blobs);
  r->mime = mime;
  r->phase = Phase::kDone;
  r->finished = t2;
  r->Push({ServeEvent::kCompleted});
  if (metrics_ != nullptr)
    metrics_->ObserveLatency(s.total_s, s.queue_s, s.compute_s, s.decode_s, s.encode_s);
  LV_LOG(INFO) << "request=" << r->id << " done in " << s.total_s << "s (queue " << s.queue_s
               << ", compute " << s.compute_s << ", decode " << s.decode_s << ", encode "
               << s.encode_s << ") bytes=" << s.video_bytes;
}

}  // namespace linvideo::server
