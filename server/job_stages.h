#pragma once
// The stages of a post-training job (what the JobManager runs, in order) and the file readers
// around them: tool progress and logs, the gate's eval.json, a model folder's DiT layer count.
// A new job kind adds its stage list to JobStages. Pure functions; any thread.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/job_manager.h"
#include "server/job_spec.h"

namespace linvideo::server {

// One step of a job: a child process (argv) or, for "publish", the in-process final stage.
struct Stage {
  std::string name;
  bool validating = false;  // the job's state while it runs
  std::vector<std::string> argv;
  std::string progress_file;  // written by the tool (JSON), "" if none
  double weight = 0;          // share of the whole job (progress fraction)
};

// The stages of `job` (spec + resolved base) for a job folder `dir`: a convert job runs
// trajectories -> convert -> [gate-base -> gate-output] -> publish.
std::vector<Stage> JobStages(const JobSnapshot& job, const JobManagerOptions& options,
                             const std::string& dir);

int64_t DirBytes(const std::string& dir);
// The last `lines` lines of a log file (reads at most its last 8 KiB).
std::string TailLines(const std::string& file, int lines);
std::string SignalName(int sig);  // "9 (Killed)"
// linvideo-eval's eval.json -> the gate's scores (GateScoreNames(), and psnr when it has one).
absl::StatusOr<std::map<std::string, double>> GateScores(const std::string& eval_json);
// num_layers of MODEL_DIR/transformer/config.json.
absl::StatusOr<int64_t> ReadDitLayerCount(const std::string& model_dir);
// The checks of a job's exported folder before anything publishes (FAILED_PRECONDITION saying
// what is wrong): a conversion has exactly `convert.linear_layers` linear layers and no hybrid
// one; a distillation keeps the base's attention kinds and declares the fewstep sampler with a
// timestep list in model_index.json.
absl::Status CheckConvertOutput(const std::string& output_dir, const ConvertJobOptions& convert);
absl::Status CheckDistillOutput(const std::string& output_dir, const std::string& base_dir);
// A distillation's base must not be a distilled few-step model already (INVALID_ARGUMENT).
absl::Status CheckDistillBase(const std::string& base_dir, const std::string& base_name);
// distill.real (`real_name`, resolved to `real_dir`, not the base itself) must be the teacher the
// base was converted from: the base records a conversion and `real_dir` has the base's DiT
// dimensions (INVALID_ARGUMENT otherwise). linvideo-train compares the weights' hashes.
absl::Status CheckDistillReal(const std::string& base_dir, const std::string& base_name,
                              const std::string& real_dir, const std::string& real_name);

// "1,3" -> {1, 3}, each in [0, layers); INVALID_ARGUMENT naming `what` otherwise.
absl::StatusOr<std::vector<int64_t>> LayerList(const std::string& what, const std::string& text,
                                               int64_t layers);

}  // namespace linvideo::server
