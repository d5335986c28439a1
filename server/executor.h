#pragma once
// Executor: the engine's view of one loaded model version (one checkpoint). The engine thread calls
// Start/Step; Decode may run on worker threads concurrently with Step. Implementations: the
// TextToVideoPipeline adapter (pipeline_executor.h) and a deterministic fake for tests
// (fake_executor.h). An Executor is immutable after creation except for internal caches; hot swap
// replaces the whole object (held as shared_ptr so in-flight requests keep theirs).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/params/generation_params.h"
#include "media/frames.h"

namespace linvideo::server {

using core::params::GenerationParams;
using core::params::ModelLimits;

// Opaque per-request denoising state, owned by the engine's request between steps.
class StepState {
 public:
  virtual ~StepState() = default;
  virtual int64_t step() const = 0;         // steps completed
  virtual int64_t total_steps() const = 0;  // steps to run
  bool done() const { return step() >= total_steps(); }
};

class Executor {
 public:
  virtual ~Executor() = default;

  // The model's limits, serving defaults and latent geometry (requests are resolved against them
  // by core::params::Resolve before they reach Start). Any thread.
  virtual const ModelLimits& limits() const = 0;
  // Batched text encoding (cached), prepared text state and seeded initial state, one per
  // resolved request. Engine thread.
  virtual absl::StatusOr<std::vector<std::unique_ptr<StepState>>> Start(
      const std::vector<const GenerationParams*>& params) = 0;
  // One denoising step for every state (same shape bucket, each at its own step). On an error no
  // state has changed: the engine steps a failed batch's requests again one at a time, so only
  // the ones that fail alone fail (a batch that runs out of device memory may fit one by one).
  // Engine thread.
  virtual absl::Status Step(const std::vector<StepState*>& batch) = 0;
  // Finished state -> RGB frames. Any thread, concurrently with Step.
  virtual absl::StatusOr<media::VideoFrames> Decode(const StepState& state) = 0;
  // Runs a minimal generation to check the model end to end before it takes traffic.
  virtual absl::Status WarmUp() = 0;
  // Device memory the executor's caches may grow to after loading (the text-embedding cache):
  // scheduler.auto_budget reserves it, since the start-up measurement sees the caches empty.
  virtual int64_t cache_bytes_limit() const { return 0; }
};

// Loads an executor from a model folder (already confined to the checkpoint root).
using ExecutorFactory =
    std::function<absl::StatusOr<std::unique_ptr<Executor>>(const std::string& model_dir)>;

}  // namespace linvideo::server
