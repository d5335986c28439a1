#include "core/sampling/euler.h"

#include "absl/strings/str_format.h"
#include "core/common/status.h"

namespace linvideo::core::sampling {

absl::StatusOr<torch::Tensor> EulerStep(const FlowSchedule& schedule, EulerState& state,
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
        "Euler step index must be in [0, %d) for this schedule, got %d", steps, step_index));
  }
  if (step_index != state.next_step) {
    return absl::FailedPreconditionError(
        absl::StrFormat("Euler steps must be taken in order: this state expects step %d, got %d",
                        state.next_step, step_index));
  }
  if (!model_output.defined() || !sample.defined() || model_output.sizes() != sample.sizes()) {
    return absl::InvalidArgumentError(
        "Euler model output and sample must be defined tensors of the same shape");
  }
  const double dt = schedule.sigmas[step_index + 1] - schedule.sigmas[step_index];  // < 0
  LV_ASSIGN_OR_RETURN(torch::Tensor next, TorchCall("EulerStep", [&]() {
                        return (sample + model_output.mul(dt)).to(sample.scalar_type());
                      }));
  state.next_step = step_index + 1;
  return next;
}

}  // namespace linvideo::core::sampling
