#include "core/sampling/sampler.h"

#include <string>

#include "absl/strings/str_format.h"
#include "core/common/status.h"

namespace linvideo::core::sampling {

SamplerState MakeSamplerState(SamplerKind kind, const UniPCOptions& unipc_options, uint64_t seed) {
  SamplerState state;
  state.kind = kind;
  state.unipc_options = unipc_options;
  state.few_step.seed = seed;
  return state;
}

absl::StatusOr<FlowSchedule> MakeRequestSchedule(const params::GenerationParams& params,
                                                 const params::ModelLimits& limits) {
  if (params.sampler.value_or(limits.default_sampler) == SamplerKind::kFewStep) {
    return MakeTimestepSchedule(params::FewStepTimesteps(params, limits), params.shift);
  }
  return MakeFlowSchedule(params.steps, params.shift);
}

absl::StatusOr<torch::Tensor> SamplerStep(const FlowSchedule& schedule, SamplerState& state,
                                          int64_t step_index, const torch::Tensor& model_output,
                                          const torch::Tensor& sample) {
  switch (state.kind) {
    case SamplerKind::kUniPC:
      return UniPCStep(schedule, state.unipc, step_index, model_output, sample,
                       state.unipc_options);
    case SamplerKind::kEuler:
      return EulerStep(schedule, state.euler, step_index, model_output, sample);
    case SamplerKind::kFewStep:
      return FewStepStep(schedule, state.few_step, step_index, model_output, sample);
  }
  return absl::InvalidArgumentError("unknown sampler kind; allowed: unipc, euler, fewstep");
}

absl::StatusOr<torch::Tensor> Sample(const FlowSchedule& schedule, SamplerKind kind,
                                     const torch::Tensor& x_T, const DenoiseFn& denoise,
                                     const UniPCOptions& unipc_options, uint64_t seed) {
  if (!denoise) return absl::InvalidArgumentError("Sample needs a denoise callback");
  SamplerState state = MakeSamplerState(kind, unipc_options, seed);
  torch::Tensor x = x_T;
  for (int64_t i = 0; i < schedule.steps(); ++i) {
    absl::StatusOr<torch::Tensor> v = denoise(x, schedule.timesteps[i]);
    if (!v.ok()) {
      return Annotate(v.status(), absl::StrFormat("denoise at step %d (timestep %d)", i,
                                                  schedule.timesteps[i]));
    }
    LV_ASSIGN_OR_RETURN(x, SamplerStep(schedule, state, i, *v, x));
  }
  return x;
}

}  // namespace linvideo::core::sampling
