#pragma once
// The plain C++ side of linvideo.v1.Jobs: what a post-training job asks for (JobSpec), where it
// stands (JobState, JobProgress, JobSnapshot), their JSON form (the durable job.json) and the
// checks of a spec that need no server state. No gRPC, no tensors: unit-tested on its own.
// A new job kind is a new JobKind, a new options struct in JobSpec and its stages in
// job_manager.cc (JobStages).

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::server {

enum class JobKind { kConvert, kDistill };

// linvideo-train trajectories + convert. 0 / "" = the tool's default.
struct ConvertJobOptions {
  int64_t linear_layers = 0;
  std::string select;     // auto | heuristic | layers:2,3
  std::string pinned;     // comma list or "none"
  std::string objective;  // adm | mse
  int64_t steps = 0;
  double lr = 0;
  uint64_t seed = 0;
  int64_t batch = 0;
  int64_t trajectories = 0;
  int64_t trajectory_steps = 0;
  int64_t checkpoint_every = 0;
};

// linvideo-train trajectories (of the base) + distill (DMD2, few-step). 0 / "" / empty = the
// tool's default.
struct DistillJobOptions {
  std::vector<int64_t> timesteps;  // before the shift; empty: 1000, 750, 500, 250
  int64_t steps = 0;               // generator updates
  int64_t fake_updates = 0;        // fake-score updates per generator update
  double real_guidance = 0;        // CFG of the real score
  double lr = 0, fake_lr = 0;
  uint64_t seed = 0;
  int64_t batch = 0;
  int64_t trajectories = 0;  // base videos whose prompts train the generator
  int64_t trajectory_steps = 0;
  int64_t checkpoint_every = 0;
  // The real score: "" = the base; else the teacher the base was converted from (a served
  // model name or a folder under the checkpoint root), resolved when the job is accepted.
  std::string real;
};

struct QualityGateSpec {
  std::string prompts;  // seen | heldout | all; "" = no gate
  int64_t seeds = 0;
  int64_t steps = 0;
  std::map<std::string, double> max_drop;  // score name -> largest allowed drop
  double min_psnr = 0;
  bool enabled() const { return !prompts.empty(); }
};

struct JobSpec {
  std::string job_id;
  std::string base;  // served model name or folder under the checkpoint root
  JobKind kind = JobKind::kConvert;
  ConvertJobOptions convert;  // kind kConvert
  DistillJobOptions distill;  // kind kDistill
  std::string output_name;
  bool activate = false;
  std::string activate_as;
  QualityGateSpec gate;
};

enum class JobState {
  kQueued,
  kRunning,
  kValidating,
  kSucceeded,
  kFailed,
  kCancelled,
  kGateFailed
};
const char* JobStateName(JobState s);  // "queued", ...
bool IsTerminal(JobState s);
const char* JobKindName(JobKind k);  // "convert", "distill"
const std::vector<JobKind>& AllJobKinds();

struct JobProgress {
  std::string stage;
  int64_t step = 0, total = 0;
  double fraction = 0;  // of the whole job
  double eta_s = -1;
  std::map<std::string, double> losses;
  std::vector<int64_t> gate_layers;
  std::vector<double> r;
};

// Everything known about a job; what GetJob returns and job.json stores.
struct JobSnapshot {
  std::string id;
  JobSpec spec;
  JobState state = JobState::kQueued;
  JobProgress progress;
  std::string error;
  int64_t attempts = 0;  // child processes started for the current stage
  int64_t stage_index = 0;
  std::string base_dir;     // the base folder, resolved when the job was accepted
  std::string base_model;   // the served model name the base came from ("" for a folder)
  std::string real_dir;     // distill.real's folder, resolved when the job was accepted ("": base)
  std::string output_path;  // relative to the checkpoint root, once published
  int64_t checkpoint_version = 0;
  std::map<std::string, double> base_scores, output_scores;
  int64_t created_ms = 0, started_ms = 0, finished_ms = 0;
  int64_t disk_bytes = 0;
  std::string log_tail;
  int64_t revision = 0;  // bumps on every change (WatchJob)
};

nlohmann::json SpecToJson(const JobSpec& spec);
absl::StatusOr<JobSpec> SpecFromJson(const nlohmann::json& j);
nlohmann::json SnapshotToJson(const JobSnapshot& job);  // without log_tail and revision
absl::StatusOr<JobSnapshot> SnapshotFromJson(const nlohmann::json& j);

// The scores a gate can bound (eval.json of linvideo-eval run).
const std::vector<std::string>& GateScoreNames();

// Checks of a spec on its own (ids, names, ranges, enums). INVALID_ARGUMENT saying what is
// allowed. The base and the layer count are checked by the JobManager, which knows the models.
absl::Status ValidateJobSpec(const JobSpec& spec);
// [A-Za-z0-9_-]{1,64}
bool IsValidName(const std::string& name);

// "1", "0-3,6": CPU indices; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<int>> ParseCpuList(const std::string& list);

}  // namespace linvideo::server
