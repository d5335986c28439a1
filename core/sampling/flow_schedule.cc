#include "core/sampling/flow_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace linvideo::core::sampling {

double ShiftSigma(double sigma, double shift) {
  // Same association as the numpy expression `shift * sigmas / (1 + (shift - 1) * sigmas)` so the
  // truncated integer timesteps match the official ones bit for bit.
  return (shift * sigma) / (1.0 + (shift - 1.0) * sigma);
}

absl::StatusOr<FlowSchedule> MakeFlowSchedule(int64_t steps, double shift) {
  if (steps < 1 || steps > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sampling steps must be in [1, %d], got %d", kMaxSteps, steps));
  }
  if (!std::isfinite(shift) || shift <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sigma shift must be a finite number > 0, got %g", shift));
  }
  // The official training grid is 1 - linspace(1, 1/1000, 1000)[::-1] cast to float32; its ends
  // are float32(0.999) and exactly 0.
  const double sigma_max = static_cast<double>(static_cast<float>(1.0 - 1.0 / kNumTrainTimesteps));
  const double sigma_min = 0.0;
  // numpy.linspace(start, stop, N + 1): start + i * ((stop - start) / N).
  const double step = (sigma_min - sigma_max) / static_cast<double>(steps);

  FlowSchedule schedule;
  schedule.shift = shift;
  schedule.sigmas.reserve(steps + 1);
  schedule.timesteps.reserve(steps);
  for (int64_t i = 0; i < steps; ++i) {
    volatile double scaled = static_cast<double>(i) * step;  // keep numpy's two roundings (no FMA)
    const double sigma = ShiftSigma(scaled + sigma_max, shift);
    schedule.timesteps.push_back(
        static_cast<int64_t>(sigma * static_cast<double>(kNumTrainTimesteps)));
    schedule.sigmas.push_back(static_cast<double>(static_cast<float>(sigma)));
  }
  schedule.sigmas.push_back(0.0);
  return schedule;
}

absl::StatusOr<FlowSchedule> MakeTimestepSchedule(const std::vector<int64_t>& timesteps,
                                                  double shift) {
  if (timesteps.empty() || static_cast<int64_t>(timesteps.size()) > kNumTrainTimesteps) {
    return absl::InvalidArgumentError(absl::StrFormat("a timestep list needs 1..%d entries, got %d",
                                                      kNumTrainTimesteps, timesteps.size()));
  }
  if (!std::isfinite(shift) || shift <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sigma shift must be a finite number > 0, got %g", shift));
  }
  const double sigma_max = static_cast<double>(static_cast<float>(1.0 - 1.0 / kNumTrainTimesteps));
  FlowSchedule schedule;
  schedule.shift = shift;
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const int64_t t = timesteps[i];
    if (t < 1 || t > kNumTrainTimesteps || (i > 0 && t >= timesteps[i - 1])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "timestep list [%s] is not allowed; use strictly decreasing integers in [1, %d]",
          absl::StrJoin(timesteps, ", "), kNumTrainTimesteps));
    }
    const double sigma = std::min(
        ShiftSigma(static_cast<double>(t) / static_cast<double>(kNumTrainTimesteps), shift),
        sigma_max);
    const double rounded = static_cast<double>(static_cast<float>(sigma));
    if (!schedule.sigmas.empty() && rounded >= schedule.sigmas.back()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "timestep list [%s] with shift %g gives repeated sigmas; use fewer or wider spaced "
          "timesteps",
          absl::StrJoin(timesteps, ", "), shift));
    }
    schedule.sigmas.push_back(rounded);
    schedule.timesteps.push_back(
        static_cast<int64_t>(sigma * static_cast<double>(kNumTrainTimesteps)));
  }
  schedule.sigmas.push_back(0.0);
  return schedule;
}

}  // namespace linvideo::core::sampling
