#pragma once
// Flow-matching sigma schedule with timestep shift, built exactly as Wan 2.1's official sampler
// (FlowUniPCMultistepScheduler constructed with num_train_timesteps=1000, shift=1, no dynamic
// shifting, then set_timesteps(N, shift=s)):
//   sigma_max = float32(0.999), sigma_min = 0
//   sigma_i   = sigma_max + i * (sigma_min - sigma_max) / N        (float64, i = 0..N-1)
//   sigma_i'  = s * sigma_i / (1 + (s - 1) * sigma_i)              (float64)
//   t_i       = int64(sigma_i' * 1000), truncated                  -> 999, 995, 991, ... (N=50,
//   s=5) sigmas    = float32([sigma_0', ..., sigma_{N-1}', 0])
// The sigmas are stored as the float32-rounded values (widened to double) because that is what the
// official solver computes with.
//
// Pure value type; thread-compatible.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace linvideo::core::sampling {

inline constexpr int64_t kNumTrainTimesteps = 1000;
inline constexpr int64_t kMaxSteps = 10000;

struct FlowSchedule {
  std::vector<double> sigmas;      // steps + 1 values, decreasing, last exactly 0
  std::vector<int64_t> timesteps;  // steps values: what the model sees at step i
  double shift = 1.0;

  int64_t steps() const { return static_cast<int64_t>(timesteps.size()); }
};

// INVALID_ARGUMENT unless 1 <= steps <= kMaxSteps and shift is finite and > 0.
absl::StatusOr<FlowSchedule> MakeFlowSchedule(int64_t steps, double shift);

// A schedule over an explicit timestep list on the 1000-step training grid (a few-step model's
// [1000, 750, 500, 250]): sigma_k = min(ShiftSigma(t_k / 1000, shift), float32(0.999)) (the
// training grid's largest sigma), timestep_k = int64(sigma_k * 1000), sigmas end with 0. Shift 5
// maps 1000, 750, 500, 250 to timesteps 999, 937, 833, 625. INVALID_ARGUMENT unless the list is
// strictly decreasing in [1, 1000] and the shift finite and > 0.
absl::StatusOr<FlowSchedule> MakeTimestepSchedule(const std::vector<int64_t>& timesteps,
                                                  double shift);

// The shift map itself: s * sigma / (1 + (s - 1) * sigma).
double ShiftSigma(double sigma, double shift);

}  // namespace linvideo::core::sampling
