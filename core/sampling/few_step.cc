#include "core/sampling/few_step.h"

#include "absl/strings/str_format.h"
#include "core/common/status.h"
#include "core/sampling/noise.h"

namespace linvideo::core::sampling {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t FewStepNoiseSeed(uint64_t seed, int64_t step) {
  return SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(step));
}

torch::Tensor PredictX0(const torch::Tensor& sample, const torch::Tensor& velocity, double sigma) {
  return sample.to(torch::kFloat) - velocity.to(torch::kFloat).mul(sigma);
}

absl::StatusOr<torch::Tensor> FewStepStep(const FlowSchedule& schedule, FewStepState& state,
                                          int64_t step_index, const torch::Tensor& model_output,
                                          const torch::Tensor& sample) {
  const int64_t steps = schedule.steps();
  if (static_cast<int64_t>(schedule.sigmas.size()) != steps + 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("schedule must have steps + 1 sigmas, got %d steps and %d sigmas", steps,
                        schedule.sigmas.size()));
  }
  if (step_index < 0 || step_index >= steps) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "few-step index must be in [0, %d) for this schedule, got %d", steps, step_index));
  }
  if (step_index != state.next_step) {
    return absl::FailedPreconditionError(
        absl::StrFormat("few-step steps must be taken in order: this state expects step %d, got %d",
                        state.next_step, step_index));
  }
  if (!model_output.defined() || !sample.defined() || model_output.sizes() != sample.sizes()) {
    return absl::InvalidArgumentError(
        "few-step model output and sample must be defined tensors of the same shape");
  }
  const double sigma = schedule.sigmas[step_index];
  const double next_sigma = schedule.sigmas[step_index + 1];
  LV_ASSIGN_OR_RETURN(
      torch::Tensor next, TorchCall("FewStepStep", [&]() {
        torch::Tensor x0 = PredictX0(sample, model_output, sigma);
        if (next_sigma == 0.0) return x0.to(sample.scalar_type());
        torch::Tensor noise =
            SeededNoise(sample.sizes(), FewStepNoiseSeed(state.seed, step_index + 1), torch::kFloat,
                        sample.device());
        return (x0.mul(1.0 - next_sigma) + noise.mul(next_sigma)).to(sample.scalar_type());
      }));
  state.next_step = step_index + 1;
  return next;
}

}  // namespace linvideo::core::sampling
