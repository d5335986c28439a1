#pragma once
// Few-step sampling over an explicit timestep list (a DMD2-distilled model's 4 steps): at each step
// the model's velocity gives the clean-sample prediction, which is re-noised to the next sigma with
// fresh noise; the last step returns the prediction itself.
//   x̂₀      = x_k − σ_k · v_k                         (rectified flow: x_σ = (1 − σ)x₀ + σε)
//   x_{k+1} = (1 − σ_{k+1}) · x̂₀ + σ_{k+1} · ε_{k+1}   (σ_K = 0: x_K = x̂₀)
// ε_{k+1} is SeededNoise(shape, FewStepNoiseSeed(seed, k + 1)): it depends only on the request's
// seed and the step, so a request's video is reproducible and the same alone or in any batch, on
// any device. The initial noise (step 0) is the request's own SeededNoise(shape, seed), as for the
// other samplers. Thread-compatible: one state per request.

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/sampling/flow_schedule.h"

namespace linvideo::core::sampling {

struct FewStepState {
  int64_t next_step = 0;  // step index the next FewStepStep call must carry
  uint64_t seed = 0;      // the request's seed (re-noising draws from it)
};

// The seed of the fresh noise that re-noises into step k >= 1 (a SplitMix64 mix of seed and k, so
// the streams of neighbouring seeds and steps do not overlap).
uint64_t FewStepNoiseSeed(uint64_t seed, int64_t step);

// Clean-sample prediction from a velocity: x̂₀ = x − σ·v, in float32.
torch::Tensor PredictX0(const torch::Tensor& sample, const torch::Tensor& velocity, double sigma);

// `model_output` is the velocity predicted for `sample` at schedule step `step_index`. Returns the
// sample at step_index + 1 in sample's dtype. FAILED_PRECONDITION when steps are taken out of
// order, INVALID_ARGUMENT for a bad index or mismatched shapes (same contract as EulerStep).
absl::StatusOr<torch::Tensor> FewStepStep(const FlowSchedule& schedule, FewStepState& state,
                                          int64_t step_index, const torch::Tensor& model_output,
                                          const torch::Tensor& sample);

}  // namespace linvideo::core::sampling
