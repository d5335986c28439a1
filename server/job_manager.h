#pragma once
// JobManager: runs post-training jobs beside serving. Each stage of a job is a child process
// (linvideo-train / linvideo-eval, server/child_process.h) in the job's folder under jobs.root,
// so a crash or OOM in training never takes the server down; the last stage (output checks,
// gate, publish, hot swap) runs on a thread of its own. Job state is a JSON file written
// atomically in the job folder (job.json): on start the manager reloads every job, and jobs
// that were running resume their stage from its last checkpoint (the tools resume when rerun).
//
// A convert job's stages: trajectories -> convert -> [gate-base -> gate-output] -> publish.
// A child killed by a signal (OOM) is restarted up to max_retries times; a non-zero exit fails
// the job with the tool's last log lines. Publish checks the exported kinds, compares the gate's
// scores, moves the output to CHECKPOINT_ROOT/<name>-v<N> (never overwriting) and, if asked,
// activates it through JobHooks::activate (Admin.LoadCheckpoint's path).
//
// Threads: one supervisor thread polls children (every `poll`), starts queued jobs and stages,
// reads progress files and keeps the metrics; it is the only thread that forks. Public methods
// are thread-safe and never block on a child (WaitForChange blocks up to its timeout).

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/job_spec.h"
#include "server/metrics.h"

namespace linvideo::server {

struct JobManagerOptions {
  std::string root;             // job folders
  std::string checkpoint_root;  // outputs are published here
  std::string train_binary, eval_binary;
  int threads = 1;    // --threads of every child (of every rank)
  int processes = 1;  // convert/distill stages run as this many data-parallel ranks
  std::vector<int> cpus;
  int nice = 10;
  std::string device = "cpu";
  int max_concurrent = 1;
  int max_retries = 2;
  int keep_finished = 20;
  absl::Duration finished_ttl = absl::Hours(168);
  absl::Duration cancel_grace = absl::Seconds(10);
  absl::Duration poll = absl::Milliseconds(200);
};

struct ResolvedBase {
  std::string dir;    // the model folder
  std::string model;  // the served model name it came from ("" for a checkpoint folder)
};

struct JobHooks {
  // A served model name or a folder under the checkpoint root -> its folder. NOT_FOUND /
  // PERMISSION_DENIED with a message that says what is allowed.
  std::function<absl::StatusOr<ResolvedBase>(const std::string& base)> resolve_base;
  // Loads `path` (relative to the checkpoint root) as `model`, validated and warmed up, and swaps
  // it in; returns the new checkpoint version. Must be Admin.LoadCheckpoint's path.
  std::function<absl::StatusOr<int64_t>(const std::string& model, const std::string& path)>
      activate;
  // Loads a model folder and runs the warm-up without activating it (jobs that do not activate).
  std::function<absl::Status(const std::string& dir)> validate;
};

class JobManager {
 public:
  // Creates jobs.root if needed, reloads its jobs (running ones resume), removes expired
  // finished ones and starts the supervisor. `metrics` may be null and must outlive the manager.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(JobManagerOptions options,
                                                            JobHooks hooks, Metrics* metrics);
  // Stops the supervisor and the children (SIGTERM, then SIGKILL): their jobs stay running on
  // disk and resume at the next start.
  ~JobManager();

  // Validates (INVALID_ARGUMENT / NOT_FOUND with what is allowed) and queues. The same job_id
  // with the same spec returns the existing job; with another spec, ALREADY_EXISTS.
  absl::StatusOr<JobSnapshot> Start(JobSpec spec);
  absl::StatusOr<JobSnapshot> Get(const std::string& id) const;
  std::vector<JobSnapshot> List(std::optional<JobState> state) const;  // oldest first
  // Queued: cancelled at once; running: SIGTERM to the child (SIGKILL after cancel_grace), the
  // job ends CANCELLED when it has exited. Ended jobs are returned unchanged.
  absl::StatusOr<JobSnapshot> Cancel(const std::string& id);
  // The job once its revision exceeds `after` (or after `timeout` unchanged).
  absl::StatusOr<JobSnapshot> WaitForChange(const std::string& id, int64_t after,
                                            absl::Duration timeout) const;

 private:
  struct Job;
  JobManager(JobManagerOptions options, JobHooks hooks, Metrics* metrics);
  absl::Status Load();
  void Supervise();
  void Tick() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartStage(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ChildEnded(Job& job, bool signaled, int code, int signal) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadProgress(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The current stage ended with status 0: the job moves on to the next (not started here).
  void AdvanceStage(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job that `spec.job_id` names: itself when the spec is the same (a retried Start),
  // ALREADY_EXISTS when not; nullopt for a new id.
  std::optional<absl::StatusOr<JobSnapshot>> ExistingLocked(const JobSpec& spec) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(Job& job, JobState state, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Changed(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);  // revision, job.json, waiters
  void Publish(const std::string& id);  // the publish stage, on its own thread
  void CollectGarbage() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateCounts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobSnapshot View(const Job& job) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string Dir(const std::string& id) const;
  std::string OutputName(const JobSnapshot& job) const;

  const JobManagerOptions options_;
  const JobHooks hooks_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread supervisor_;
};

}  // namespace linvideo::server
