#pragma once
// UniPC multistep solver for flow matching (Wan 2.1's default sampler), as the official
// FlowUniPCMultistepScheduler with predict_x0=True: the model's velocity v is turned into a data
// prediction x0 = x - sigma * v; alpha = 1 - sigma, lambda = log(alpha) - log(sigma); each step
// first corrects the current sample with UniC (from the step before it on), then predicts the next
// sample with UniP. Warm-up and the final steps use lower orders (lower_order_final); the last
// step, to sigma = 0 (lambda = +inf), returns the x0 prediction.
//
// Pure functions over an explicit per-request state, so one engine batch can hold requests at
// different steps: each request owns its UniPCState and steps it with its own slice of the batch.
// Thread-compatible: distinct states may be stepped concurrently.

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/sampling/flow_schedule.h"

namespace linvideo::core::sampling {

enum class UniPCVariant { kBh1, kBh2 };

struct UniPCOptions {
  int order = 2;  // solver_order; 1..3
  UniPCVariant variant = UniPCVariant::kBh2;
  bool lower_order_final = true;
  std::vector<int64_t> disable_corrector;  // step indices whose following corrector is skipped
  // true: the step coefficients (lambda, h, B(h), rhos) are computed in float32 exactly as the
  // official solver does with its float32 sigma tensors (trajectory parity). false: in double.
  bool float32_coefficients = true;
};

absl::Status ValidateUniPCOptions(const UniPCOptions& options);

// Solver history of one request. Owned by the caller; start from a default-constructed state.
struct UniPCState {
  std::vector<torch::Tensor> x0_history;  // x0 predictions of the last `order` steps, oldest first
  torch::Tensor last_sample;              // sample the last predictor started from (for UniC)
  int64_t last_order = 0;                 // order the last predictor used (the corrector reuses it)
  int64_t lower_order_nums = 0;           // warm-up counter, saturates at options.order
  int64_t next_step = 0;                  // step index the next UniPCStep call must carry
};

// One solver step: `model_output` is the (guided) velocity the model predicted for `sample` at
// schedule step `step_index` (sigma = schedule.sigmas[step_index]). Returns the sample for step
// step_index + 1 (the final result after the last step). Steps must be taken in order: step_index
// must equal state.next_step (FAILED_PRECONDITION otherwise). Shapes of model_output and sample
// must match (INVALID_ARGUMENT). The returned tensor has sample's dtype and device.
absl::StatusOr<torch::Tensor> UniPCStep(const FlowSchedule& schedule, UniPCState& state,
                                        int64_t step_index, const torch::Tensor& model_output,
                                        const torch::Tensor& sample,
                                        const UniPCOptions& options = {});

}  // namespace linvideo::core::sampling
