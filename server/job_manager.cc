#include "server/job_manager.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/io/json_file.h"
#include "core/posttrain/defaults.h"
#include "server/child_process.h"
#include "server/job_manager_internal.h"
#include "server/job_stages.h"
#include "server/log.h"

namespace linvideo::server {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

constexpr int64_t kEndedGraceMs = 2000;

}  // namespace

JobManager::JobManager(JobManagerOptions options, JobHooks hooks, Metrics* metrics)
    : options_(std::move(options)), hooks_(std::move(hooks)), metrics_(metrics) {}

std::string JobManager::Dir(const std::string& id) const {
  return (fs::path(options_.root) / id).string();
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(JobManagerOptions options,
                                                               JobHooks hooks, Metrics* metrics) {
  for (std::string* bin : {&options.train_binary, &options.eval_binary}) {
    *bin = fs::absolute(*bin).string();
    if (access(bin->c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("jobs: '", *bin,
                       "' is not an executable (jobs.train_binary / "
                       "jobs.eval_binary: linvideo-train and linvideo-eval)"));
    }
  }
  std::error_code ec;
  fs::create_directories(options.root, ec);
  // Children run in their job folder: every path they are given must be absolute.
  if (!ec) options.root = fs::canonical(options.root, ec).string();
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("jobs.root '", options.root, "': ", ec.message()));
  }
  std::unique_ptr<JobManager> m(new JobManager(std::move(options), std::move(hooks), metrics));
  if (absl::Status s = m->Load(); !s.ok()) return s;
  m->supervisor_ = std::thread([p = m.get()] { p->Supervise(); });
  return m;
}

JobManager::~JobManager() {
  std::vector<std::thread> publishers;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    for (auto& [id, job] : jobs_) {
      if (job->publisher.joinable()) publishers.push_back(std::move(job->publisher));
    }
  }
  if (supervisor_.joinable()) supervisor_.join();
  for (std::thread& t : publishers) t.join();
}

absl::Status JobManager::Load() {
  absl::MutexLock lock(&mu_);
  std::error_code ec;
  fs::directory_iterator it(options_.root, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code lec;
    if (it->is_symlink(lec)) {
      // Job folders are made by the server itself; a symlink would point its writes (and its
      // garbage collection) somewhere else.
      LV_LOG(WARNING) << "jobs: skipping " << it->path().string()
                      << ": a symlink, not a job folder the server made";
      continue;
    }
    const fs::path file = it->path() / "job.json";
    if (!fs::exists(file, ec)) {
      ec.clear();
      continue;
    }
    absl::StatusOr<json> j = core::io::ReadJsonFile(file.string());
    absl::StatusOr<JobSnapshot> snap =
        j.ok() ? SnapshotFromJson(*j) : absl::StatusOr<JobSnapshot>(j.status());
    // The id names the folder that garbage collection removes: it must be this folder's name.
    const std::string folder = it->path().filename().string();
    if (snap.ok() && (!IsValidName(snap->id) || snap->id != folder)) {
      snap = absl::InvalidArgumentError(
          absl::StrCat("its id '", snap->id, "' is not the folder's name '", folder, "'"));
    }
    if (!snap.ok()) {
      LV_LOG(WARNING) << "jobs: skipping " << file.string() << ": " << snap.status();
      continue;
    }
    auto job = std::make_unique<Job>();
    job->snap = std::move(*snap);
    job->stages = JobStages(job->snap, options_, Dir(job->snap.id));
    // Fields of the server's own (not the snapshot's): a wrong type reads as unset, never throws.
    if (const json& c = (*j)["cancel_requested"]; c.is_boolean()) job->cancel_requested = c;
    if (const json& r = (*j)["retries"]; r.is_number_integer()) {
      job->retries = static_cast<int>(std::clamp<int64_t>(r.get<int64_t>(), 0, 1000));
    }
    if (!IsTerminal(job->snap.state)) {
      // A child left by a server killed before PR_SET_PDEATHSIG acted: stop it (and wait until it
      // has gone, so two copies never write the same files); the stage resumes.
      const json& pid = (*j)["pid"];
      const pid_t old = pid.is_number_integer() ? pid.get<pid_t>() : -1;
      if (ChildAlive(old, Dir(job->snap.id))) {
        SignalChild(old, SIGKILL);
        const bool gone = WaitGone(old, absl::Seconds(10));
        LV_LOG(WARNING) << "job=" << job->snap.id << " killed a leftover child pid=" << old
                        << (gone ? "" : " (still not gone after 10 s)");
      }
      if (job->cancel_requested) {
        // CancelJob was accepted, but the server stopped before the stage did: honour it.
        Finish(*job, JobState::kCancelled,
               "cancelled by CancelJob (the server restarted before the stage stopped)");
      } else if (job->snap.state != JobState::kQueued) {
        LV_LOG(INFO)
            << "job=" << job->snap.id << " resumes at stage "
            << job->stages[std::min<size_t>(job->snap.stage_index, job->stages.size() - 1)].name;
      }
    }
    int64_t n = 0;
    if (absl::SimpleAtoi(absl::StripPrefix(job->snap.id, "job-"), &n))
      next_id_ = std::max(next_id_, n + 1);
    jobs_[job->snap.id] = std::move(job);
  }
  if (ec) {
    LV_LOG(WARNING) << "jobs: listing " << options_.root << " stopped early: " << ec.message();
  }
  CollectGarbage();
  UpdateCounts();
  return absl::OkStatus();
}

absl::StatusOr<JobSnapshot> JobManager::Start(JobSpec spec) {
  // A retry of a StartJob whose answer was lost finds its job first: it must not be refused by
  // checks whose inputs changed since (a base model swapped or removed, jobs.processes).
  {
    absl::MutexLock lock(&mu_);
    if (auto existing = ExistingLocked(spec)) return *existing;
  }
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) return s;
  // Training stages split their combined batch over jobs.processes ranks; an unset batch is the
  // tool's default, which must split too.
  const bool distill = spec.kind == JobKind::kDistill;
  const int64_t asked = distill ? spec.distill.batch : spec.convert.batch;
  const int64_t batch = asked > 0 ? asked
                        : distill ? core::posttrain::kDefaultDistillBatch
                                  : core::posttrain::kDefaultConvertBatch;
  if (options_.processes > 1 && batch % options_.processes != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.batch=%d%s: this server trains with jobs.processes=%d data-parallel processes, so the "
        "batch must be a multiple of %d",
        distill ? "distill" : "convert", asked,
        asked > 0 ? "" : absl::StrCat(" (unset: ", batch, ")"), options_.processes,
        options_.processes));
  }
  absl::StatusOr<ResolvedBase> base = hooks_.resolve_base(spec.base);
  if (!base.ok()) return base.status();
  // Children run in the job folder: a folder given relative to the server's directory
  // (--model=default=models/default) must be made absolute here.
  std::error_code ec;
  base->dir = fs::weakly_canonical(fs::absolute(base->dir), ec).string();
  absl::StatusOr<int64_t> layers = ReadDitLayerCount(base->dir);
  if (!layers.ok()) return layers.status();
  std::string real_dir;
  if (spec.kind == JobKind::kDistill) {
    if (absl::Status d = CheckDistillBase(base->dir, spec.base); !d.ok()) return d;
    if (!spec.distill.real.empty()) {
      absl::StatusOr<ResolvedBase> real = hooks_.resolve_base(spec.distill.real);
      if (!real.ok()) {
        return absl::Status(real.status().code(),
                            absl::StrCat("distill.real: ", real.status().message()));
      }
      real_dir = fs::weakly_canonical(fs::absolute(real->dir), ec).string();
      if (real_dir == base->dir) {
        real_dir.clear();  // the base itself: the default
      } else if (absl::Status r =
                     CheckDistillReal(base->dir, spec.base, real_dir, spec.distill.real);
                 !r.ok()) {
        return r;
      }
    }
  }
  // linvideo-train convert's own rules (core/posttrain: ValidateSelection and
  // ValidateConvertOptions), checked here so that a job is refused when it is started rather
  // than failing in its second stage: K in 1..L-1 (one softmax layer at least); layers:I,J,...
  // lists K distinct layers (the pinned list does not apply); otherwise K <= the unpinned layers.
  const ConvertJobOptions& c = spec.convert;
  if (spec.kind == JobKind::kConvert && absl::StartsWith(c.select, "layers:")) {
    absl::StatusOr<std::vector<int64_t>> l =
        LayerList("convert.select", c.select.substr(7), *layers);
    if (!l.ok()) return l.status();
    if (static_cast<int64_t>(l->size()) != c.linear_layers) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "convert.select '%s' names %d layers but linear_layers is %d: name exactly K layers",
          c.select, l->size(), c.linear_layers));
    }
  } else if (spec.kind == JobKind::kConvert) {
    std::vector<int64_t> pinned = {0};
    if (c.pinned == "none") {
      pinned.clear();
    } else if (!c.pinned.empty()) {
      absl::StatusOr<std::vector<int64_t>> p = LayerList("convert.pinned", c.pinned, *layers);
      if (!p.ok()) return p.status();
      pinned = *p;
    }
    const int64_t free_layers = *layers - static_cast<int64_t>(pinned.size());
    if (c.linear_layers > free_layers) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "convert.linear_layers=%d: the base '%s' has %d DiT layers and %d pinned softmax (%s), "
          "so at most %d can become linear; allowed 1..%d",
          c.linear_layers, spec.base, *layers, pinned.size(), absl::StrJoin(pinned, ","),
          free_layers, free_layers));
    }
  }
  if (spec.kind == JobKind::kConvert && c.linear_layers >= *layers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "convert.linear_layers=%d: the base '%s' has %d DiT layers and keeps one softmax at "
        "least; allowed 1..%d",
        c.linear_layers, spec.base, *layers, *layers - 1));
  }
  if (spec.activate && spec.activate_as.empty() && base->model.empty()) {
    return absl::InvalidArgumentError(
        "activate: the base is a checkpoint folder, not a served model; set activate_as to the "
        "model name the output should serve as");
  }
  absl::MutexLock lock(&mu_);
  if (auto existing = ExistingLocked(spec)) return *existing;  // a Start that raced this one
  std::string id = spec.job_id;
  // symlink_status: a dangling symlink under that name counts as taken (creating the folder would
  // follow it out of the jobs root).
  while (id.empty() || fs::exists(fs::symlink_status(Dir(id), ec))) {
    if (!spec.job_id.empty()) {
      return absl::AlreadyExistsError(absl::StrCat("job folder ", Dir(id), " already exists"));
    }
    id = absl::StrCat("job-", next_id_++);
  }
  ec.clear();
  fs::create_directories(fs::path(Dir(id)) / "logs", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", Dir(id), ": ", ec.message()));
  auto job = std::make_unique<Job>();
  job->snap.id = id;
  job->snap.spec = std::move(spec);
  job->snap.base_dir = base->dir;
  job->snap.base_model = base->model;
  job->snap.real_dir = real_dir;
  job->snap.created_ms = NowMs();
  job->snap.progress.stage = "queued";
  job->stages = JobStages(job->snap, options_, Dir(id));
  Job& ref = *job;
  jobs_[id] = std::move(job);
  Changed(ref);
  UpdateCounts();
  LV_LOG(INFO) << "job=" << id << " queued kind=" << JobKindName(ref.snap.spec.kind)
               << " base=" << ref.snap.spec.base
               << (ref.snap.spec.kind == JobKind::kDistill
                       ? absl::StrCat(" real=",
                                      ref.snap.real_dir.empty() ? "base" : ref.snap.real_dir)
                       : absl::StrCat(" linear_layers=", c.linear_layers));
  return View(ref);
}

std::optional<absl::StatusOr<JobSnapshot>> JobManager::ExistingLocked(const JobSpec& spec) const {
  if (spec.job_id.empty()) return std::nullopt;
  auto it = jobs_.find(spec.job_id);
  if (it == jobs_.end()) return std::nullopt;
  if (SpecToJson(it->second->snap.spec) == SpecToJson(spec)) return View(*it->second);
  return absl::AlreadyExistsError(
      absl::StrCat("job '", spec.job_id, "' exists with a different spec; use another job_id"));
}

absl::StatusOr<JobSnapshot> JobManager::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no job '", id,
                     "'; ListJobs shows the jobs kept (finished ones are removed after "
                     "jobs.finished_ttl_h hours or beyond jobs.keep_finished)"));
  }
  return View(*it->second);
}

std::vector<JobSnapshot> JobManager::List(std::optional<JobState> state) const {
  absl::MutexLock lock(&mu_);
  std::vector<JobSnapshot> out;
  for (const auto& [id, job] : jobs_) {
    if (!state.has_value() || job->snap.state == *state) out.push_back(View(*job));
  }
  std::sort(out.begin(), out.end(),
            [](const JobSnapshot& a, const JobSnapshot& b) { return a.created_ms < b.created_ms; });
  return out;
}

absl::StatusOr<JobSnapshot> JobManager::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  Job& job = *it->second;
  if (IsTerminal(job.snap.state) || job.cancel_requested) return View(job);
  job.cancel_requested = true;
  if (job.pid > 0) {
    SignalChild(job.pid, SIGTERM);
    job.cancel_sent = absl::Now();
    LV_LOG(INFO) << "job=" << id << " cancelling: SIGTERM to pid " << job.pid;
    Changed(job);
  } else if (job.publishing) {
    // The publish thread checks the flag before it claims a version and before the swap; the
    // request is recorded (job.json, a new revision for WatchJob) so a restart honours it too.
    LV_LOG(INFO) << "job=" << id << " cancelling: the publish stage stops at its next check";
    Changed(job);
  } else {
    Finish(job, JobState::kCancelled,
           absl::StrCat(
               "cancelled by CancelJob (",
               job.snap.state == JobState::kQueued ? "before it started" : "between stages", ")"));
  }
  return View(job);
}

absl::StatusOr<JobSnapshot> JobManager::WaitForChange(const std::string& id, int64_t after,
                                                      absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = jobs_.find(id);
    return stop_ || it == jobs_.end() || it->second->snap.revision > after;
  };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  if (stop_) return absl::UnavailableError("the server is shutting down");
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  return View(*it->second);
}

JobSnapshot JobManager::View(const Job& job) const {
  JobSnapshot s = job.snap;
  if (!s.progress.stage.empty()) {
    s.log_tail =
        TailLines((fs::path(Dir(s.id)) / "logs" / (s.progress.stage + ".log")).string(), 12);
  }
  return s;
}

void JobManager::Changed(Job& job) {
  ++job.snap.revision;
  json j = SnapshotToJson(job.snap);
  j["pid"] = job.pid;
  j["cancel_requested"] = job.cancel_requested;
  j["retries"] = job.retries;  // so restarts of the server do not reset jobs.max_retries
  const std::string file = (fs::path(Dir(job.snap.id)) / "job.json").string();
  if (absl::Status s = core::io::WriteJsonFile(file, j); !s.ok()) {
    LV_LOG(ERROR) << "job=" << job.snap.id << " cannot write " << file << ": " << s;
  }
}

void JobManager::Supervise() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    Tick();
    mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.poll);
  }
  // Shutdown: stop the children; their jobs stay running on disk and resume at the next start.
  for (auto& [id, job] : jobs_) {
    if (job->pid > 0) SignalChild(job->pid, SIGTERM);
  }
  const absl::Time deadline = absl::Now() + options_.cancel_grace;
  for (auto& [id, job] : jobs_) {
    while (job->pid > 0) {
      if (std::optional<ChildExit> e = PollChild(job->pid)) {
        job->pid = -1;
        // A stage that ended on its own with status 0 (the tools exit non-zero or by the signal
        // when stopped) is done: record it, so the restart goes on with the next stage instead
        // of running this one again. The next stage is not started.
        if (!e->signaled && e->code == 0 && !job->cancel_requested &&
            job->snap.stage_index < static_cast<int64_t>(job->stages.size())) {
          AdvanceStage(*job);
          LV_LOG(INFO) << "job=" << id << " stage finished during shutdown; resumes at stage "
                       << job->snap.stage_index;
        }
        Changed(*job);
      } else if (absl::Now() > deadline) {
        SignalChild(job->pid, SIGKILL);
      }
      if (job->pid > 0) {
        mu_.Unlock();
        absl::SleepFor(absl::Milliseconds(50));
        mu_.Lock();
      }
    }
  }
}

void JobManager::Tick() {
  const absl::Time now = absl::Now();
  int active = 0;
  for (auto& [id, holder] : jobs_) {
    Job& job = *holder;
    if (!job.publishing && job.publisher.joinable()) job.publisher.join();
    if (IsTerminal(job.snap.state) || job.snap.state == JobState::kQueued) continue;
    ++active;
    if (job.pid > 0) {
      if (std::optional<ChildExit> e = PollChild(job.pid)) {
        job.pid = -1;
        ChildEnded(job, e->signaled, e->code, e->signal);
        continue;
      }
      ReadProgress(job);
      if (job.cancel_requested && now - job.cancel_sent > options_.cancel_grace) {
        SignalChild(job.pid, SIGKILL);
      }
      if (now - job.disk_checked > absl::Seconds(5)) {
        job.snap.disk_bytes = DirBytes(Dir(id));
        job.disk_checked = now;
      }
    } else if (!job.publishing && now >= job.next_start) {
      StartStage(job);
    }
  }
  // Queued jobs start oldest first while there are free slots.
  std::vector<Job*> queued;
  for (auto& [id, job] : jobs_) {
    if (job->snap.state == JobState::kQueued) queued.push_back(job.get());
  }
  std::sort(queued.begin(), queued.end(),
            [](Job* a, Job* b) { return a->snap.created_ms < b->snap.created_ms; });
  for (Job* job : queued) {
    if (active >= options_.max_concurrent) break;
    ++active;
    job->snap.started_ms = NowMs();
    LV_LOG(INFO) << "job=" << job->snap.id << " started";
    StartStage(*job);
  }
  UpdateCounts();
  CollectGarbage();  // every tick: jobs_ is small, and the TTL expires without any event
}

void JobManager::StartStage(Job& job) {
  const std::string dir = Dir(job.snap.id);
  if (job.snap.stage_index >= static_cast<int64_t>(job.stages.size())) {
    Finish(job, JobState::kFailed, "internal: no stage left to run");
    return;
  }
  const Stage& stage = job.stages[job.snap.stage_index];
  job.snap.state = stage.validating ? JobState::kValidating : JobState::kRunning;
  if (job.snap.progress.stage != stage.name) {
    job.snap.progress.stage = stage.name;
    job.snap.progress.step = job.snap.progress.total = 0;
    job.snap.progress.eta_s = -1;
  }
  if (stage.name == "publish") {
    job.publishing = true;
    if (job.publisher.joinable()) job.publisher.join();
    job.publisher = std::thread([this, id = job.snap.id] { Publish(id); });
    Changed(job);
    return;
  }
  std::error_code ec;
  if (stage.name == "convert" || stage.name == "distill") {
    fs::remove_all(fs::path(dir) / "output", ec);  // a partial export
  }
  fs::create_directories(fs::path(dir) / "logs", ec);
  ChildOptions child;
  child.argv = stage.argv;
  child.log_file = (fs::path(dir) / "logs" / (stage.name + ".log")).string();
  child.work_dir = dir;
  child.cpus = options_.cpus;
  child.nice = options_.nice;
  child.env = {{"LINVIDEO_JOB_ID", job.snap.id},
               {"OMP_NUM_THREADS", absl::StrCat(options_.threads)},
               {"LINVIDEO_LOG_QUIET", "1"}};
  std::ofstream(child.log_file, std::ios::app)
      << "== " << absl::FormatTime(absl::Now()) << " attempt " << job.snap.attempts + 1 << ": "
      << absl::StrJoin(stage.argv, " ") << "\n";
  absl::StatusOr<pid_t> pid = SpawnChild(child);
  if (!pid.ok()) {
    Finish(job, JobState::kFailed,
           absl::StrCat("stage ", stage.name, ": ", pid.status().message()));
    return;
  }
  job.pid = *pid;
  ++job.snap.attempts;
  LV_LOG(INFO) << "job=" << job.snap.id << " stage=" << stage.name << " pid=" << job.pid
               << " attempt=" << job.snap.attempts;
  Changed(job);
}

void JobManager::ChildEnded(Job& job, bool signaled, int code, int signal) {
  const Stage& stage = job.stages[job.snap.stage_index];
  const fs::path log = fs::path(Dir(job.snap.id)) / "logs" / (stage.name + ".log");
  if (job.cancel_requested) {
    Finish(job, JobState::kCancelled,
           absl::StrCat("cancelled by CancelJob during stage ", stage.name));
    return;
  }
  // `linvideo-train launch` (jobs.processes > 1) exits 128+N when a rank was killed by signal N,
  // as a shell reports it: an OOM-killed rank is retried like an OOM-killed single process.
  if (!signaled && code > 128 && code <= 128 + 64 && stage.argv.size() > 1 &&
      stage.argv[1] == "launch") {
    signaled = true;
    signal = code - 128;
  }
  if (signaled) {
    if (job.retries < options_.max_retries) {
      ++job.retries;
      job.next_start = absl::Now() + absl::Seconds(1);
      job.snap.error =
          absl::StrCat("stage ", stage.name, " was killed by signal ", SignalName(signal),
                       "; restarting from its last checkpoint (retry ", job.retries, " of ",
                       options_.max_retries, ")");
      LV_LOG(WARNING) << "job=" << job.snap.id << " " << job.snap.error;
      Changed(job);
      return;
    }
    Finish(job, JobState::kFailed,
           absl::StrCat("stage ", stage.name, " was killed by signal ", SignalName(signal),
                        " (SIGKILL is what the kernel's OOM killer sends) after ", job.retries,
                        " retries (jobs.max_retries); log: ", log.string()));
    return;
  }
  if (code != 0) {
    Finish(job, JobState::kFailed,
           absl::StrCat("stage ", stage.name, " exited with status ", code, ":\n",
                        TailLines(log.string(), 6)));
    return;
  }
  AdvanceStage(job);
  StartStage(job);
}

void JobManager::AdvanceStage(Job& job) {
  ReadProgress(job);
  ++job.snap.stage_index;
  job.snap.attempts = 0;
  job.retries = 0;
  job.snap.error.clear();
}

void JobManager::ReadProgress(Job& job) {
  const Stage& stage = job.stages[job.snap.stage_index];
  double done = 0, total = 0;
  for (size_t i = 0; i < job.stages.size(); ++i) {
    total += job.stages[i].weight;
    if (static_cast<int64_t>(i) < job.snap.stage_index) done += job.stages[i].weight;
  }
  JobProgress& p = job.snap.progress;
  bool changed = false;
  std::error_code ec;
  if (!stage.progress_file.empty() && fs::exists(stage.progress_file, ec)) {
    // The tool's file is input: a field of the wrong type (a NaN loss is written as null) is
    // skipped, never allowed to throw on the supervisor thread.
    absl::StatusOr<json> j = core::io::ReadJsonFile(stage.progress_file);
    const json* step = j.ok() && j->is_object() && j->contains("step") ? &(*j)["step"] : nullptr;
    if (step != nullptr && step->is_number_integer() && step->get<int64_t>() != p.step) {
      auto number = [&](const char* key, double fallback) {
        const auto f = j->find(key);
        return f != j->end() && f->is_number() ? f->get<double>() : fallback;
      };
      p.step = step->get<int64_t>();
      p.total = static_cast<int64_t>(number("total", 0));
      p.eta_s = number("eta_s", -1.0);
      if (const auto f = j->find("losses"); f != j->end() && f->is_object()) {
        p.losses.clear();
        for (const auto& [term, value] : f->items()) {
          if (value.is_number()) p.losses[term] = value.get<double>();
        }
      }
      if (const auto f = j->find("r"); f != j->end() && f->is_array()) {
        p.r.clear();  // a gate per layer: keep the positions, NaN for what is not a number
        for (const json& v : *f) {
          p.r.push_back(v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN());
        }
      }
      if (const auto f = j->find("gate_layers"); f != j->end() && f->is_array()) {
        p.gate_layers.clear();
        for (const json& v : *f) {
          if (v.is_number_integer()) p.gate_layers.push_back(v.get<int64_t>());
        }
      }
      changed = true;
    }
  }
  const double within = p.total > 0 ? static_cast<double>(p.step) / p.total : 0.0;
  p.fraction = total > 0 ? (done + stage.weight * within) / total : 0;
  if (metrics_ != nullptr) metrics_->SetJobProgress(job.snap.id, p.fraction, p.losses);
  if (changed) Changed(job);
}

void JobManager::Finish(Job& job, JobState state, const std::string& error) {
  job.snap.state = state;
  job.snap.error = error;
  job.snap.finished_ms = NowMs();
  job.pid = -1;
  if (state == JobState::kSucceeded) job.snap.progress.fraction = 1;
  job.snap.disk_bytes = DirBytes(Dir(job.snap.id));
  const int64_t from = job.snap.started_ms > 0 ? job.snap.started_ms : job.snap.created_ms;
  if (metrics_ != nullptr) {
    metrics_->ObserveJobDuration(JobKindName(job.snap.spec.kind), JobStateName(state),
                                 (job.snap.finished_ms - from) / 1000.0);
    metrics_->ClearJob(job.snap.id);
  }
  if (state == JobState::kSucceeded) {
    LV_LOG(INFO) << "job=" << job.snap.id << " succeeded output=" << job.snap.output_path;
  } else {
    LV_LOG(WARNING) << "job=" << job.snap.id << " " << JobStateName(state) << ": " << error;
  }
  Changed(job);
  UpdateCounts();
  // Garbage collection runs in the next tick, not here: callers may be iterating jobs_.
}

void JobManager::UpdateCounts() {
  if (metrics_ == nullptr) return;
  std::map<std::pair<std::string, std::string>, int> counts;
  for (JobKind kind : AllJobKinds()) {
    for (int s = 0; s <= static_cast<int>(JobState::kGateFailed); ++s) {
      counts[{JobKindName(kind), JobStateName(static_cast<JobState>(s))}] = 0;
    }
  }
  for (const auto& [id, job] : jobs_) {
    ++counts[{JobKindName(job->snap.spec.kind), JobStateName(job->snap.state)}];
  }
  metrics_->SetJobCounts(counts);
}

void JobManager::CollectGarbage() {
  std::vector<Job*> ended;
  for (auto& [id, job] : jobs_) {
    if (IsTerminal(job->snap.state) && !job->publishing && !job->publisher.joinable()) {
      ended.push_back(job.get());
    }
  }
  std::sort(ended.begin(), ended.end(),
            [](Job* a, Job* b) { return a->snap.finished_ms > b->snap.finished_ms; });
  const int64_t now = NowMs();
  const int64_t oldest = now - absl::ToInt64Milliseconds(options_.finished_ttl);
  for (size_t i = 0; i < ended.size(); ++i) {
    if (static_cast<int>(i) < options_.keep_finished && ended[i]->snap.finished_ms >= oldest) {
      continue;
    }
    // A job that has just ended stays a moment, so a WatchJob stream sees its final state
    // rather than NOT_FOUND (with keep_finished=0 it would otherwise go in the same tick).
    if (now - ended[i]->snap.finished_ms < kEndedGraceMs) continue;
    const std::string id = ended[i]->snap.id;
    std::error_code ec;
    fs::remove_all(Dir(id), ec);
    LV_LOG(INFO) << "job=" << id << " folder removed (jobs.keep_finished / jobs.finished_ttl_h)";
    jobs_.erase(id);
  }
}

}  // namespace linvideo::server
