#pragma once
// FakeExecutor: a deterministic stand-in for the Wan pipeline, for scheduler/engine tests and
// end-to-end tests of the serving stack without model weights. A model folder for it holds
// `fake_model.json`: {"step_ms": 20, "item_ms": 2, "salt": 0, "max_width": 256, ...}. A step
// sleeps step_ms + item_ms * batch (so batching pays off like on a real accelerator); frames are a
// pure function of (prompt, seed, shape, steps, salt), so "same seed -> same frames" holds whether
// a request ran alone or in a batch, and different checkpoints (salt) give different videos.
// Thread safety: as Executor.

#include <atomic>
#include <memory>
#include <string>

#include "server/executor.h"

namespace linvideo::server {

struct FakeExecutorOptions {
  int step_ms = 10;
  int item_ms = 1;
  int decode_ms = 0;
  uint64_t salt = 0;
  // Start fails (INTERNAL) for any batch holding a request with this prompt (a request that
  // cannot start, e.g. a text encoder error); empty: never.
  std::string fail_start_prompt;
  // Step fails RESOURCE_EXHAUSTED (as TorchCall reports a device out-of-memory) for any batch
  // holding a request with this prompt; empty: never.
  std::string oom_step_prompt;
  // Step fails RESOURCE_EXHAUSTED for a batch of more requests than this (a device that fits
  // fewer at once than the scheduler batches); 0: no bound.
  int max_step_batch = 0;
  // Frames of pseudo-random pixels (incompressible: large results) instead of smooth gradients.
  bool noise = false;
  ModelLimits limits;
};

class FakeExecutor : public Executor {
 public:
  explicit FakeExecutor(const FakeExecutorOptions& options);
  // Reads DIR/fake_model.json; INVALID_ARGUMENT/NOT_FOUND when missing or corrupt.
  static absl::StatusOr<std::unique_ptr<Executor>> FromDir(const std::string& dir);

  const ModelLimits& limits() const override { return options_.limits; }
  absl::StatusOr<std::vector<std::unique_ptr<StepState>>> Start(
      const std::vector<const GenerationParams*>& params) override;
  absl::Status Step(const std::vector<StepState*>& batch) override;
  absl::StatusOr<media::VideoFrames> Decode(const StepState& state) override;
  absl::Status WarmUp() override { return absl::OkStatus(); }

  int64_t steps_run() const { return steps_run_; }  // batched steps executed

 private:
  FakeExecutorOptions options_;
  std::atomic<int64_t> steps_run_{0};
};

}  // namespace linvideo::server
