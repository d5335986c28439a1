#pragma once
// Plain flow-matching Euler sampler on a FlowSchedule: x_{i+1} = x_i + (sigma_{i+1} - sigma_i) *
// v_i. Stateless apart from the step counter; the explicit state keeps the same calling pattern as
// UniPC (one state per request, requests at different steps in one batch). Thread-compatible.

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/sampling/flow_schedule.h"

namespace linvideo::core::sampling {

struct EulerState {
  int64_t next_step = 0;  // step index the next EulerStep call must carry
};

// `model_output` is the velocity predicted for `sample` at schedule step `step_index`. Returns the
// sample at step_index + 1 in sample's dtype. FAILED_PRECONDITION when steps are taken out of
// order, INVALID_ARGUMENT for a bad index or mismatched shapes.
absl::StatusOr<torch::Tensor> EulerStep(const FlowSchedule& schedule, EulerState& state,
                                        int64_t step_index, const torch::Tensor& model_output,
                                        const torch::Tensor& sample);

}  // namespace linvideo::core::sampling
