#include "server/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace linvideo::server {
namespace {

SchedulerOptions MakeSchedulerOptions(const ServerConfig& config) {
  SchedulerOptions o;
  o.max_batch = config.scheduler.max_batch;
  o.token_budget = config.scheduler.token_budget;
  o.max_queue = config.scheduler.max_queue;
  o.max_queue_delay = absl::Milliseconds(config.scheduler.max_queue_delay_ms);
  o.starvation_age = absl::Seconds(config.scheduler.starvation_age_s);
  return o;
}

}  // namespace

Engine::Engine(const ServerConfig& config, ModelRegistry* registry, ComputeDevice* compute,
               Metrics* metrics)
    : config_(config),
      registry_(registry),
      compute_(compute),
      metrics_(metrics),
      scheduler_(MakeSchedulerOptions(config)),
      output_(config.limits.workers, compute, metrics, [this] {
        absl::MutexLock lock(&mu_);
        --finishing_;
      }) {
  engine_thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() { Stop(); }

absl::StatusOr<std::shared_ptr<ServeRequest>> Engine::Submit(const SubmitOptions& o) {
  if (draining_) return absl::UnavailableError("server is draining: no new work is accepted");
  if (paused_) return absl::UnavailableError("admission is paused by the operator; retry later");
  if (!o.request_id.empty()) {
    if (absl::Status valid = RequestTable::ValidateId(o.request_id); !valid.ok()) return valid;
    absl::MutexLock lock(&mu_);
    if (auto existing = table_.Find(o.request_id)) {
      if (o.streaming) {
        return absl::AlreadyExistsError(
            absl::StrCat("request_id '", o.request_id, "' already exists; use Get to follow it"));
      }
      return existing;
    }
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = registry_->Get(o.model);
  if (!model.ok()) return model.status();
  absl::StatusOr<GenerationParams> params = (*model)->Resolve(o.params);
  if (!params.ok()) return params.status();
  absl::StatusOr<OutputFormat> output = ResolveOutputFormat(o.output);
  if (!output.ok()) return output.status();

  // Cost: what one step of this request takes from the step budget, and its whole compute.
  const int64_t tokens = core::params::StepTokens(*params, (*model)->limits.geometry);
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
  r->params = *params;
  r->output = *output;
  r->created = absl::Now();
  r->model = *model;
  r->model_name = (*model)->name;
  r->model_version = (*model)->version;
  r->streaming = o.streaming;
  r->entry.key = BucketKey{(*model)->name,
                           (*model)->version,
                           params->width,
                           params->height,
                           params->frames,
                           params->sampler.value_or((*model)->limits.default_sampler),
                           core::params::UsesCfg(*params)};
  r->entry.priority = std::clamp(o.priority, 0, kNumPriorities - 1);
  r->entry.tokens = tokens;
  r->entry.enqueued = r->created;
  r->entry.deadline = o.deadline;

  absl::MutexLock lock(&mu_);
  if (stop_) return absl::UnavailableError("server is shutting down: no new work is accepted");
  r->id = o.request_id.empty() ? table_.NewId() : o.request_id;
  if (!table_.Insert(r)) {  // lost a race with the same id
    if (o.streaming)
      return absl::AlreadyExistsError(absl::StrCat("request_id '", r->id, "' already exists"));
    return table_.Find(r->id);
  }
  if (absl::Status queued = scheduler_.Enqueue(&r->entry); !queued.ok()) {
    table_.Erase(r->id);
    return queued;
  }
  {
    absl::MutexLock rl(&r->mu);
    r->position = scheduler_.Position(&r->entry, r->created);
    r->Push(QueuedEvent{r->position});
  }
  LV_LOG(INFO) << "request=" << r->id << " queued model=" << r->model->name << "@v"
               << r->model->version << " " << r->entry.key.ToString() << " steps=" << params->steps
               << " priority=" << r->entry.priority;
  wake_ = true;
  return r;
}

absl::Status Engine::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<ServeRequest> r = table_.Find(id);
  if (r == nullptr)
    return absl::NotFoundError(absl::StrCat("no request '", id, "' (unknown or expired)"));
  // A request past its last step is no longer planned: the mark is then ignored.
  scheduler_.Cancel(&r->entry);
  wake_ = true;
  return absl::OkStatus();
}

std::shared_ptr<ServeRequest> Engine::Find(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  return table_.Find(id);
}

void Engine::Pause(bool paused) { paused_ = paused; }
void Engine::Drain() { draining_ = true; }

int Engine::OutstandingLocked() const { return scheduler_.size() + finishing_; }

int Engine::Outstanding() const {
  absl::MutexLock lock(&mu_);
  return OutstandingLocked();
}

int Engine::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return OutstandingLocked() == 0; };
  mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
  return OutstandingLocked();
}

void Engine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
    wake_ = true;
  }
  if (engine_thread_.joinable()) engine_thread_.join();
  output_.Stop();
}

void Engine::Abort(ServeRequest& r, const absl::Status& status) {
  scheduler_.Finish(&r.entry);  // a no-op for entries the plan already dropped
  r.state.reset();
  r.model.reset();  // the state was the last thing using it
  if (r.Fail(status)) LV_LOG(INFO) << "request=" << r.id << " ended: " << status;
}

void Engine::PublishQueueState(absl::Time now) {
  for (SchedEntry* entry : scheduler_.entries()) {
    if (entry->running()) continue;
    ServeRequest& r = RequestTable::Of(entry);
    const int pos = scheduler_.Position(entry, now);
    absl::MutexLock rl(&r.mu);
    if (pos != r.position) {
      r.position = pos;
      r.Push(QueuedEvent{pos});
    }
  }
  if (metrics_ != nullptr) {
    const auto depth = scheduler_.QueuedByPriority();
    for (int p = 0; p < kNumPriorities; ++p) metrics_->SetQueueDepth(p, depth[p]);
    metrics_->SetRunning(scheduler_.running());
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
        const std::vector<SchedEntry*> left = scheduler_.entries();
        for (SchedEntry* e : left)
          Abort(RequestTable::Of(e), absl::UnavailableError("server shutting down"));
        return;
      }
      if (now - last_expire > absl::Seconds(1)) {
        table_.Expire(now, absl::Seconds(config_.limits.result_ttl_s));
        last_expire = now;
      }
      Plan plan = scheduler_.Next(now);
      for (SchedEntry* e : plan.dropped) {
        Abort(RequestTable::Of(e),
              e->cancelled
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
      for (SchedEntry* e : plan.admit) admitted.push_back(&RequestTable::Of(e));
      for (SchedEntry* e : plan.batch) batch.push_back(&RequestTable::Of(e));
    }
    if (!admitted.empty()) StartAdmitted(admitted);
    RunStep(batch);
  }
}

void Engine::StartAdmitted(const std::vector<ServeRequest*>& admitted) {
  // One bucket per plan, so every admitted request shares the model version (and executor).
  std::vector<const GenerationParams*> params;
  for (ServeRequest* r : admitted) params.push_back(&r->params);
  const absl::Time t0 = absl::Now();
  absl::StatusOr<std::vector<std::unique_ptr<StepState>>> states;
  {
    auto lease = ComputeDevice::Acquire(compute_);
    states = admitted[0]->model->executor->Start(params);
  }
  const double dt = absl::ToDoubleSeconds(absl::Now() - t0);
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < admitted.size(); ++i) {
    ServeRequest* r = admitted[i];
    if (!states.ok()) {
      Abort(*r, absl::InternalError(
                    absl::StrCat("starting the request failed: ", states.status().message())));
      continue;
    }
    r->state = std::move((*states)[i]);
    absl::MutexLock rl(&r->mu);
    r->phase = RequestPhase::kRunning;
    r->position = 0;
    r->stats.queue_s = absl::ToDoubleSeconds(t0 - r->created);
    r->stats.compute_s += dt;
    r->stats.start_s += dt;
    r->Push(StartedEvent{static_cast<int>(admitted.size())});
    LV_LOG(INFO) << "request=" << r->id << " started after " << r->stats.queue_s
                 << "s in a batch of " << admitted.size() << " new";
  }
}

void Engine::RunStep(const std::vector<ServeRequest*>& batch) {
  std::vector<StepState*> states;
  std::vector<ServeRequest*> stepped;
  for (ServeRequest* r : batch) {
    if (r->state != nullptr) {
      states.push_back(r->state.get());
      stepped.push_back(r);
    }
  }
  if (states.empty()) return;
  const absl::Time t0 = absl::Now();
  absl::Status st;
  {
    auto lease = ComputeDevice::Acquire(compute_);
    st = stepped[0]->model->executor->Step(states);
  }
  const double dt = absl::ToDoubleSeconds(absl::Now() - t0);
  int64_t tokens = 0;
  absl::MutexLock lock(&mu_);
  for (ServeRequest* r : stepped) {
    tokens += r->entry.tokens;
    if (!st.ok()) {
      Abort(*r, absl::InternalError(absl::StrCat("denoising step failed: ", st.message())));
      continue;
    }
    const bool done = r->state->done();
    {
      absl::MutexLock rl(&r->mu);
      r->step = static_cast<int>(r->state->step());
      r->stats.compute_s += dt;
      r->stats.max_batch = std::max<int>(r->stats.max_batch, stepped.size());
      r->Push(ProgressEvent{r->step, static_cast<int>(r->state->total_steps())});
      if (done) r->phase = RequestPhase::kFinishing;
    }
    if (done) {
      // Hand-off: from here the output stage owns the request's state.
      scheduler_.Finish(&r->entry);
      ++finishing_;
      output_.Enqueue(r->shared_from_this());
    }
  }
  if (metrics_ != nullptr && st.ok())
    metrics_->ObserveStep(static_cast<int>(stepped.size()), dt, tokens);
}

}  // namespace linvideo::server
