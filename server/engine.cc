#include "server/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/common/runtime.h"
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
  o.limit_probe_steps = config.scheduler.limit_probe_steps;
  return o;
}

// A request the journal remembers as ended, as Get will show it.
std::shared_ptr<ServeRequest> EndedRequest(const RecoveredRequest& rec) {
  auto r = std::make_shared<ServeRequest>();
  r->id = rec.id;
  r->params = rec.params;
  r->output = rec.output;
  r->created = rec.created;
  r->model_name = rec.model;
  r->model_version = rec.model_version;
  r->entry.priority = rec.priority;
  absl::MutexLock rl(&r->mu);
  r->stats = rec.stats;
  r->finished = rec.finished;
  if (rec.status.ok()) {
    r->phase = RequestPhase::kDone;
    r->step = static_cast<int>(rec.params.steps);
    auto mime_only = std::make_shared<EncodedOutput>();
    mime_only->mime = rec.mime;
    r->result = std::move(mime_only);
    r->result_file = rec.result_path;
  } else {
    r->phase = rec.status.code() == absl::StatusCode::kCancelled ? RequestPhase::kCancelled
                                                                 : RequestPhase::kFailed;
    r->error = rec.status;
  }
  return r;
}

}  // namespace

Engine::Engine(const ServerConfig& config, ModelRegistry* registry, ComputeDevice* compute,
               Metrics* metrics, RequestJournal* journal)
    : config_(config),
      registry_(registry),
      compute_(compute),
      metrics_(metrics),
      journal_(journal),
      scheduler_(MakeSchedulerOptions(config)),
      output_(
          config.limits.workers,
          ResolveEncodeThreads(config.limits.encode_threads, config.device, core::AvailableCores(),
                               config.limits.workers),
          compute, metrics,
          [this](const ServeRequest& r, const EncodedOutput& out, const RequestStats& stats,
                 absl::Time finished) { return Store(r, out, stats, finished); },
          [this](ServeRequest& r) {
            Finished(r);
            absl::MutexLock lock(&mu_);
            --finishing_;
            wake_ = true;  // starts held back for the decode backlog may go on
          }) {
  if (journal_ != nullptr) PublishJournalUsage();
  engine_thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() { Stop(); }

void Engine::SetIdSuffix(const std::string& suffix) {
  absl::MutexLock lock(&mu_);
  table_.set_id_suffix(suffix);
}

namespace {

// A Generate (streaming) may take the id of an earlier Generate whose request was cancelled (its
// client went away: a dropped connection) or failed, so a client retrying with the same id runs
// again instead of getting ALREADY_EXISTS until the result TTL. Such a request has left the
// scheduler and holds no result, so nothing is lost; whoever still holds it keeps it alive.
bool Replaceable(ServeRequest& existing, const SubmitOptions& o) {
  if (!o.streaming || !existing.streaming) return false;
  absl::MutexLock l(&existing.mu);
  return existing.phase == RequestPhase::kCancelled || existing.phase == RequestPhase::kFailed ||
         (existing.phase == RequestPhase::kDone && existing.abandoned);
}

// A start or step failure as the request's error: a device out-of-memory stays
// RESOURCE_EXHAUSTED (retry later, or smaller); the rest is INTERNAL.
absl::Status ComputeFailure(const absl::Status& st, absl::string_view what) {
  return absl::Status(absl::IsResourceExhausted(st) ? absl::StatusCode::kResourceExhausted
                                                    : absl::StatusCode::kInternal,
                      absl::StrCat(what, ": ", st.message()));
}

}  // namespace

std::shared_ptr<const LoadedModel> Engine::Pin(ServeRequest& r,
                                               std::shared_ptr<const LoadedModel> model,
                                               Admission a) {
  {
    absl::MutexLock rl(&r.mu);
    r.params = std::move(a.params);
    r.model_version = model->version;
  }
  r.entry.key = std::move(a.key);
  r.entry.tokens = a.tokens;
  r.entry.token_budget = a.token_budget;
  std::swap(r.model, model);
  return model;
}

absl::StatusOr<Engine::Admission> Engine::Admit(const LoadedModel& model,
                                                const GenerationParams& requested,
                                                const OutputFormat& output, bool streaming) const {
  absl::StatusOr<GenerationParams> params = model.Resolve(requested);
  if (!params.ok()) return params.status();
  if (!streaming && output.kind == OutputKind::kPngFrames && params->frames > 1) {
    // Get returns one blob: the frames could be computed but never handed back.
    return absl::InvalidArgumentError(absl::StrCat(
        "output format png frames with ", params->frames,
        " frames is only streamed by Generate; Submit/Get return one file: use mp4 or webm, "
        "frames=1, or Generate"));
  }
  // Cost: what one step of this request takes from the step budget, and its whole compute.
  const int64_t tokens = core::params::StepTokens(*params, model.limits.geometry);
  const int64_t cost = tokens * params->steps;
  if (config_.limits.max_cost > 0 && cost > config_.limits.max_cost) {
    return absl::ResourceExhaustedError(
        absl::StrCat("request cost ", cost,
                     " (latent tokens x steps x CFG passes) exceeds the server budget of ",
                     config_.limits.max_cost, "; reduce width, height, frames or steps"));
  }
  const auto own = config_.scheduler.model_token_budgets.find(model.name);
  const int64_t budget = own != config_.scheduler.model_token_budgets.end()
                             ? own->second
                             : config_.scheduler.token_budget;
  if (budget > 0 && tokens > budget) {
    return absl::ResourceExhaustedError(
        absl::StrCat("request needs ", tokens, " tokens per step; model ", model.name,
                     "'s step budget is ", budget, "; reduce width, height or frames"));
  }
  Admission a;
  a.tokens = tokens;
  a.token_budget = budget;
  a.key = BucketKey{model.name,
                    model.version,
                    params->width,
                    params->height,
                    params->frames,
                    params->sampler.value_or(model.limits.default_sampler),
                    core::params::UsesCfg(*params)};
  a.params = *std::move(params);
  return a;
}

int Engine::MoveQueued(int64_t from_version, const std::shared_ptr<const LoadedModel>& to) {
  // The old checkpoint's references, let go after the lock: the last one frees its weights.
  std::vector<std::shared_ptr<const LoadedModel>> released;
  absl::MutexLock lock(&mu_);
  // A Submit that resolved against `from_version` before this and is queued after it moves too
  // (Submit checks this under the lock).
  rolled_back_[to->name].insert(from_version);
  int moved = 0;
  const std::vector<SchedEntry*> entries = scheduler_.entries();  // Abort below edits the list
  for (SchedEntry* e : entries) {
    // A started request holds state computed by the old weights: it finishes on them.
    if (e->running() || e->key.model != to->name || e->key.version != from_version) continue;
    ServeRequest& r = RequestTable::Of(e);
    absl::StatusOr<Admission> a = Admit(*to, r.requested, r.output, r.streaming);
    if (!a.ok()) {
      // Nothing new runs on a rolled-back checkpoint.
      released.push_back(r.model);
      Abort(r, absl::FailedPreconditionError(
                   absl::StrCat("checkpoint ", to->name, " v", from_version,
                                " was rolled back before the "
                                "request started, and the restored v",
                                to->version, " refuses it: ", a.status().message())));
      continue;
    }
    released.push_back(Pin(r, to, *std::move(a)));
    ++moved;
    LV_LOG(INFO) << "request=" << r.id << " moved to " << to->name << "@v" << to->version << " (v"
                 << from_version << " was rolled back before it started)";
  }
  if (moved > 0) {
    PublishQueueState(absl::Now());
    wake_ = true;
  }
  return moved;
}

absl::StatusOr<std::shared_ptr<ServeRequest>> Engine::Submit(const SubmitOptions& o) {
  if (draining_) return absl::UnavailableError("server is draining: no new work is accepted");
  if (paused_) return absl::UnavailableError("admission is paused by the operator; retry later");
  if (!o.request_id.empty()) {
    if (absl::Status valid = RequestTable::ValidateId(o.request_id); !valid.ok()) return valid;
    absl::MutexLock lock(&mu_);
    if (auto existing = table_.Find(o.request_id)) {
      // A streaming request is not journaled: a Submit must not hand out its id as its own.
      if (o.streaming || existing->streaming) {
        if (!Replaceable(*existing, o)) {
          return absl::AlreadyExistsError(absl::StrCat(
              "request_id '", o.request_id,
              "' already exists; use Get to follow it (a Generate with the id of an earlier one "
              "runs again once that one was cancelled or failed, or its call ended before the "
              "video was delivered)"));
        }
      } else {
        return existing;
      }
    }
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = registry_->Get(o.model);
  if (!model.ok()) return model.status();
  absl::StatusOr<OutputFormat> output = ResolveOutputFormat(o.output);
  if (!output.ok()) return output.status();
  absl::StatusOr<Admission> admission = Admit(**model, o.params, *output, o.streaming);
  if (!admission.ok()) return admission.status();

  auto r = std::make_shared<ServeRequest>();
  r->requested = o.params;
  r->output = *output;
  r->created = absl::Now();
  r->model_name = (*model)->name;
  r->streaming = o.streaming;
  Pin(*r, *model, *std::move(admission));
  r->entry.priority = std::clamp(o.priority, 0, kNumPriorities - 1);
  r->entry.enqueued = r->created;
  r->entry.deadline = o.deadline;

  if (o.request_id.empty()) {
    absl::MutexLock lock(&mu_);
    // A client may have chosen an id of the generated form for a Submit of its own.
    do r->id = table_.NewId();
    while (table_.Find(r->id) != nullptr);
  } else {
    r->id = o.request_id;
  }
  // Journaled (fsync'ed) before it is queued: an accepted Submit survives a crash, and its end
  // record cannot precede it in the journal.
  const bool journaled = journal_ != nullptr && !o.streaming && !o.recovered;
  if (journaled) {
    absl::Status j = journal_->Submitted(*r);
    if (absl::IsAlreadyExists(j)) {
      if (auto existing = Find(r->id)) return existing;
      return absl::AbortedError(
          absl::StrCat("request_id '", r->id, "' is being submitted by another call; retry"));
    }
    if (!j.ok()) {
      return absl::UnavailableError(
          absl::StrCat("the request could not be journaled (", j.message(), "); retry later"));
    }
  }
  absl::MutexLock lock(&mu_);
  auto refuse = [&](absl::Status s) {
    if (journaled) journal_->Forget(r->id);
    return s;
  };
  if (stop_)
    return refuse(absl::UnavailableError("server is shutting down: no new work is accepted"));
  if (auto rb = rolled_back_.find(r->model_name);
      rb != rolled_back_.end() && rb->second.count(r->model_version) > 0) {
    // Its checkpoint was rolled back while this call resolved and journaled it: it runs on the
    // active one, as MoveQueued moves the queued ones.
    absl::StatusOr<std::shared_ptr<const LoadedModel>> active = registry_->Get(r->model_name);
    if (!active.ok()) return refuse(active.status());
    absl::StatusOr<Admission> a = Admit(**active, r->requested, r->output, r->streaming);
    if (!a.ok()) return refuse(a.status());
    Pin(*r, *active, *std::move(a));
  }
  // The streaming request this one takes the id of (see Replaceable): swapped out only now that
  // the new one has passed every check, and put back if it cannot be queued.
  std::shared_ptr<ServeRequest> replaced;
  if (!table_.Insert(r)) {
    std::shared_ptr<ServeRequest> existing = table_.Find(r->id);
    if (!o.streaming && !existing->streaming) return existing;  // a Submit retried: the same one
    if (!Replaceable(*existing, o)) {
      return refuse(
          absl::AlreadyExistsError(absl::StrCat("request_id '", r->id, "' already exists")));
    }
    replaced = existing;
    table_.Erase(r->id);
    table_.Insert(r);
  }
  if (absl::Status queued = scheduler_.Enqueue(&r->entry, o.recovered); !queued.ok()) {
    table_.Erase(r->id);
    if (replaced != nullptr) table_.Insert(replaced);
    return refuse(queued);
  }
  if (replaced != nullptr) {
    LV_LOG(INFO) << "request=" << r->id
                 << " runs again (the earlier Generate with this id was cancelled or failed)";
  }
  {
    absl::MutexLock rl(&r->mu);
    r->position = scheduler_.Position(&r->entry, r->created);
    r->Push(QueuedEvent{r->position});
  }
  LV_LOG(INFO) << "request=" << r->id << (o.recovered ? " queued again" : " queued")
               << " model=" << r->model->name << "@v" << r->model->version << " "
               << r->entry.key.ToString() << " steps=" << r->params.steps
               << " priority=" << r->entry.priority;
  // The queue gauges (and others' positions, which a higher priority moves) at once: the loop
  // refreshes them only between steps, which on a CPU take seconds to minutes.
  PublishQueueState(absl::Now());
  wake_ = true;
  return r;
}

int Engine::Recover(const std::vector<RecoveredRequest>& recovered) {
  std::vector<const RecoveredRequest*> pending;
  for (const RecoveredRequest& rec : recovered) {
    if (!rec.ended) {
      pending.push_back(&rec);
      continue;
    }
    absl::MutexLock lock(&mu_);
    table_.Insert(EndedRequest(rec));
  }
  std::stable_sort(pending.begin(), pending.end(),
                   [](const auto* a, const auto* b) { return a->created < b->created; });
  int queued = 0;
  for (const RecoveredRequest* rec : pending) {
    SubmitOptions o;
    o.request_id = rec->id;
    o.model = rec->model;
    // Resolved again against the checkpoint serving the model now (its defaults for what the
    // client left unset), as MoveQueued does after a rollback; prompt and seed are kept.
    o.params = rec->requested;
    o.output = rec->output;
    o.priority = rec->priority;
    o.recovered = true;
    absl::StatusOr<std::shared_ptr<ServeRequest>> r = Submit(o);
    if (r.ok()) {
      ++queued;
      continue;
    }
    RecoveredRequest failed = *rec;
    failed.ended = true;
    failed.finished = absl::Now();
    failed.status = absl::FailedPreconditionError(absl::StrCat(
        "accepted before a restart, but it cannot run any more: ", r.status().message()));
    std::shared_ptr<ServeRequest> fr = EndedRequest(failed);
    LV_LOG(WARNING) << "request=" << rec->id << " " << failed.status;
    if (journal_ != nullptr) {
      if (auto s = journal_->Ended(*fr, /*sync=*/true); !s.ok())
        LV_LOG(WARNING) << "request=" << rec->id << " end not journaled: " << s;
    }
    absl::MutexLock lock(&mu_);
    table_.Insert(fr);
  }
  return queued;
}

std::string Engine::Store(const ServeRequest& r, const EncodedOutput& out,
                          const RequestStats& stats, absl::Time finished) {
  if (journal_ == nullptr || r.streaming) return "";
  absl::StatusOr<std::string> path = journal_->StoreDone(r, out, stats, finished);
  if (!path.ok()) {
    LV_LOG(WARNING) << "request=" << r.id << " result not stored (" << path.status()
                    << "); it is served from memory and lost at a restart";
    return "";
  }
  return *path;
}

void Engine::Finished(ServeRequest& r) {
  if (journal_ == nullptr || r.streaming) return;
  // Done requests were journaled by Store; this records failures of the decode or encode.
  if (absl::Status s = journal_->Ended(r, /*sync=*/false); !s.ok())
    LV_LOG(WARNING) << "request=" << r.id << " end not journaled: " << s;
}

void Engine::PublishJournalUsage() {
  if (metrics_ == nullptr) return;
  const RequestJournal::Usage u = journal_->usage();
  metrics_->SetStoredResults(u.results, u.result_bytes, u.records);
}

void Engine::MaintainJournal(absl::Time now) {
  const std::vector<std::string> forgotten = journal_->Maintain(now);
  PublishJournalUsage();
  absl::MutexLock lock(&mu_);
  for (const std::string& id : forgotten) {
    std::shared_ptr<ServeRequest> r = table_.Find(id);
    if (r == nullptr) continue;
    absl::MutexLock rl(&r->mu);
    if (r->Terminal()) table_.Erase(id);
  }
}

void Engine::CancelLocked(ServeRequest& r) {
  if (scheduler_.Queued(&r.entry)) {
    // Not started: nothing of it runs, so it ends now, not after the step under way (which can
    // take minutes), and the queue gauges and positions show it at once.
    Abort(r, absl::CancelledError("request cancelled"));
    PublishQueueState(absl::Now());
  } else {
    // Running: stops at the next step boundary. Past its last step it is no longer planned and
    // the mark is ignored.
    scheduler_.Cancel(&r.entry);
  }
  wake_ = true;
}

void Engine::Cancel(ServeRequest& r) {
  absl::MutexLock lock(&mu_);
  CancelLocked(r);
}

absl::Status Engine::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<ServeRequest> r = table_.Find(id);
  if (r == nullptr)
    return absl::NotFoundError(absl::StrCat("no request '", id, "' (unknown or expired)"));
  CancelLocked(*r);
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
  // Nothing is journaled after this: the pending requests' next start is not a crash's.
  if (journal_ != nullptr) {
    if (absl::Status s = journal_->MarkCleanShutdown(); !s.ok())
      LV_LOG(WARNING) << "journal: clean shutdown not recorded: " << s;
  }
}

void Engine::Abort(ServeRequest& r, const absl::Status& status, bool journal) {
  scheduler_.Finish(&r.entry);  // a no-op for entries the plan already dropped
  // Freed by the engine thread outside the lock: the request may hold the last reference to a
  // swapped-out checkpoint, and freeing its weights (or the latents) must not stall the lock.
  if (r.state != nullptr) released_states_.push_back(std::move(r.state));
  if (r.model != nullptr) released_models_.push_back(std::move(r.model));
  wake_ = true;
  if (!r.Fail(status)) return;
  LV_LOG(INFO) << "request=" << r.id << " ended: " << status;
  if (journal && journal_ != nullptr && !r.streaming) {
    // Not fsync'ed: a cancel lost to a power cut only makes the request run again.
    if (auto s = journal_->Ended(r, /*sync=*/false); !s.ok())
      LV_LOG(WARNING) << "request=" << r.id << " end not journaled: " << s;
  }
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
  absl::Time last_expire = absl::Now(), last_maintain = last_expire;
  while (true) {
    std::vector<ServeRequest*> admitted, batch;
    // References for the step: the table may drop a request meanwhile (expiry; a Generate
    // taking the id of one that ended), and the step must not be left with a freed one.
    std::vector<std::shared_ptr<ServeRequest>> held;
    // What Abort let go of, freed right after the lock below (declared before it so that an
    // early exit frees them after it too; the states before the checkpoints they came from).
    std::vector<std::shared_ptr<const LoadedModel>> dead_models;
    std::vector<std::unique_ptr<StepState>> dead_states;
    if (journal_ != nullptr && absl::Now() - last_maintain > absl::Seconds(5)) {
      last_maintain = absl::Now();
      MaintainJournal(last_maintain);
    }
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = absl::Now();
      if (stop_) {
        const std::vector<SchedEntry*> left = scheduler_.entries();
        for (SchedEntry* e : left)
          Abort(RequestTable::Of(e), absl::UnavailableError("server shutting down"),
                /*journal=*/false);  // journaled requests run again after the restart
        return;
      }
      if (now - last_expire > absl::Seconds(1)) {
        RequestTable::Retention keep;
        keep.ttl = absl::Seconds(config_.limits.result_ttl_s);
        keep.max_ended = config_.limits.max_finished_requests;
        keep.max_result_bytes = int64_t{config_.limits.max_stored_results_mb} << 20;
        const RequestTable::Expired expired = table_.Expire(now, keep);
        if (metrics_ != nullptr) {
          metrics_->SetFinishedRequests(expired.ended, expired.result_bytes,
                                        static_cast<int64_t>(expired.evicted.size()));
        }
        for (const std::string& id : expired.evicted) {
          LV_LOG(INFO) << "request=" << id << " forgotten before its TTL: more than "
                       << keep.max_ended << " finished requests or "
                       << config_.limits.max_stored_results_mb << " MiB of results in memory";
          if (journal_ != nullptr) journal_->Forget(id);  // lock order: engine, then journal
        }
        last_expire = now;
      }
      // Decode backpressure: requests past their last step wait for the output stage holding
      // their final latents (and, on a GPU, device memory); beyond a batch plus one per worker
      // nothing new starts until decodes catch up (a fast few-step model outruns them).
      const bool may_start = finishing_ < config_.scheduler.max_batch + config_.limits.workers;
      Plan plan = scheduler_.Next(now, may_start);
      if (metrics_ != nullptr) {
        for (const auto& [model, bucket] : plan.forgotten_limits)
          metrics_->SetStepLimit(model, bucket, 0);
      }
      for (SchedEntry* e : plan.dropped) {
        Abort(RequestTable::Of(e),
              e->cancelled
                  ? absl::CancelledError("request cancelled")
                  : absl::DeadlineExceededError("request deadline passed before it finished"));
      }
      PublishQueueState(now);
      dead_states.swap(released_states_);
      dead_models.swap(released_models_);
      if (plan.empty()) {
        if (!dead_states.empty() || !dead_models.empty()) continue;  // free them first
        wake_ = false;
        auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wake_; };
        mu_.AwaitWithDeadline(absl::Condition(&woken),
                              std::min(plan.wake_at, now + absl::Seconds(1)));
        continue;
      }
      for (SchedEntry* e : plan.admit) admitted.push_back(&RequestTable::Of(e));
      for (SchedEntry* e : plan.batch) batch.push_back(&RequestTable::Of(e));
      for (ServeRequest* r : admitted) held.push_back(r->shared_from_this());
      for (ServeRequest* r : batch) held.push_back(r->shared_from_this());
    }
    // Before anything starts in the aborted requests' place (their memory is not counted).
    dead_states.clear();
    dead_models.clear();
    if (!admitted.empty()) StartAdmitted(admitted);
    RunStep(batch);
  }
}

void Engine::StartAdmitted(const std::vector<ServeRequest*>& admitted) {
  // One bucket per plan, so every admitted request shares the model version (and executor).
  std::vector<const GenerationParams*> params;
  for (ServeRequest* r : admitted) params.push_back(&r->params);
  const absl::Time t0 = absl::Now();
  std::vector<absl::StatusOr<std::unique_ptr<StepState>>> states;
  bool split = false;
  {
    auto lease = ComputeDevice::Acquire(compute_);
    absl::StatusOr<std::vector<std::unique_ptr<StepState>>> together =
        admitted[0]->model->executor->Start(params);
    if (together.ok()) {
      for (auto& s : *together) states.emplace_back(std::move(s));
    } else if (admitted.size() == 1) {
      states.emplace_back(together.status());
    } else {
      // One request's failure must not take its batchmates down: start each alone, so only the
      // ones that fail alone fail.
      LV_LOG(WARNING) << "starting " << admitted.size()
                      << " requests together failed; starting them one by one: "
                      << together.status();
      split = true;
      for (const GenerationParams* p : params) {
        absl::StatusOr<std::vector<std::unique_ptr<StepState>>> one =
            admitted[0]->model->executor->Start({p});
        if (one.ok()) {
          states.emplace_back(std::move((*one)[0]));
        } else {
          states.emplace_back(one.status());
        }
      }
    }
  }
  const double dt = absl::ToDoubleSeconds(absl::Now() - t0);
  absl::MutexLock lock(&mu_);
  if (split && metrics_ != nullptr) metrics_->CountBatchSplit("start");
  for (size_t i = 0; i < admitted.size(); ++i) {
    ServeRequest* r = admitted[i];
    if (!states[i].ok()) {
      Abort(*r, ComputeFailure(states[i].status(), "starting the request failed"));
      continue;
    }
    r->state = std::move(*states[i]);
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

void Engine::LimitAfterSplit(const std::vector<ServeRequest*>& batch, const absl::Status& together,
                             const std::vector<absl::Status>& result,
                             const std::vector<bool>& ran_alone) {
  // Only a batch that ran out of memory together and whose requests all fit one by one says the
  // device is too small for it; a request that fails alone is that request's fault.
  bool any = false;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!ran_alone[i]) continue;
    if (!result[i].ok()) return;
    any = true;
  }
  if (!any || !absl::IsResourceExhausted(together)) return;
  int64_t tokens = 0;
  for (const ServeRequest* r : batch) tokens += r->entry.tokens;
  const BucketKey& key = batch[0]->entry.key;
  const int64_t before = scheduler_.StepLimit(key);
  const int64_t limit = scheduler_.LimitSteps(key, tokens - 1);
  if (limit == before) return;
  LV_LOG(WARNING) << key.ToString() << ": " << batch.size() << " requests (" << tokens
                  << " tokens) ran out of device memory together and fit one by one; its steps "
                     "are held to "
                  << limit << " tokens for the next " << scheduler_.options().limit_probe_steps
                  << " clean steps (a larger scheduler.memory_margin_pct, or a smaller "
                     "token_budget, avoids it)";
  if (metrics_ != nullptr) metrics_->SetStepLimit(key.model, key.ToString(), limit);
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
  // One status per request: the batch's, or (after a batch failure) its own step alone, and
  // the seconds of that step alone (0: it ran in the batch).
  std::vector<absl::Status> result(stepped.size());
  std::vector<double> alone_s(stepped.size(), 0.0);
  std::vector<bool> ran_alone(stepped.size(), false);
  bool split = false;
  absl::Status together;
  {
    auto lease = ComputeDevice::Acquire(compute_);
    Executor& executor = *stepped[0]->model->executor;
    std::vector<int64_t> before;
    for (StepState* s : states) before.push_back(s->step());
    together = executor.Step(states);
    if (!together.ok() && stepped.size() > 1) {
      // A failed step changes no state (Executor::Step): step each request alone, so one bad
      // request, or a batch too large for the device, does not end its batchmates. A state that
      // moved all the same is not stepped twice: it fails with the batch.
      LV_LOG(WARNING) << "a step of " << stepped.size()
                      << " requests together failed; stepping them one by one: " << together;
      split = true;
      for (size_t i = 0; i < states.size(); ++i) {
        if (states[i]->step() != before[i]) {
          result[i] = together;
          continue;
        }
        const absl::Time a0 = absl::Now();
        ran_alone[i] = true;
        result[i] = executor.Step({states[i]});
        alone_s[i] = absl::ToDoubleSeconds(absl::Now() - a0);
      }
    } else {
      std::fill(result.begin(), result.end(), together);
    }
  }
  // The batch's time (the failed attempt when it was split), then each request's own.
  double dt = absl::ToDoubleSeconds(absl::Now() - t0);
  for (double a : alone_s) dt -= a;
  int64_t tokens = 0;
  int ok = 0;
  absl::MutexLock lock(&mu_);
  const BucketKey& key = stepped[0]->entry.key;
  if (split) {
    if (metrics_ != nullptr) metrics_->CountBatchSplit("step");
    LimitAfterSplit(stepped, together, result, ran_alone);
  } else if (together.ok() && scheduler_.CleanStep(key)) {
    LV_LOG(INFO) << key.ToString() << ": " << scheduler_.options().limit_probe_steps
                 << " clean steps since its step limit was learned; lifted (the next batch will "
                    "show whether the device holds it)";
    if (metrics_ != nullptr) metrics_->SetStepLimit(key.model, key.ToString(), 0);
  }
  for (size_t i = 0; i < stepped.size(); ++i) {
    ServeRequest* r = stepped[i];
    const absl::Status& st = result[i];
    if (!st.ok()) {
      Abort(*r, ComputeFailure(st, "denoising step failed"));
      continue;
    }
    tokens += r->entry.tokens;
    ++ok;
    if (split && metrics_ != nullptr) metrics_->ObserveStep(1, alone_s[i], r->entry.tokens);
    const bool done = r->state->done();
    {
      absl::MutexLock rl(&r->mu);
      r->step = static_cast<int>(r->state->step());
      r->stats.compute_s += dt + alone_s[i];
      r->stats.max_batch = std::max<int>(r->stats.max_batch, split ? 1 : stepped.size());
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
  // A split batch's steps were observed one by one above.
  if (metrics_ != nullptr && !split && ok > 0) metrics_->ObserveStep(ok, dt, tokens);
}

}  // namespace linvideo::server
