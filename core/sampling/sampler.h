#pragma once
// Sampler-agnostic per-request state and step, and a whole-trajectory convenience loop over a
// denoise callback. The serving engine keeps one SamplerState per request and calls SamplerStep
// with that request's slice of a batched model output; offline code and tests use Sample().
// Thread-compatible: distinct states may be used concurrently.

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "core/params/generation_params.h"
#include "core/params/sampler_kind.h"
#include "core/sampling/euler.h"
#include "core/sampling/few_step.h"
#include "core/sampling/flow_schedule.h"
#include "core/sampling/unipc.h"

namespace linvideo::core::sampling {

// The kinds are named in core/params (LibTorch-free, for the server's edge).
using params::ParseSamplerKind;
using params::SamplerKind;
using params::SamplerKindName;

struct SamplerState {
  SamplerKind kind = SamplerKind::kUniPC;
  UniPCOptions unipc_options;
  UniPCState unipc;
  EulerState euler;
  FewStepState few_step;

  int64_t next_step() const {
    switch (kind) {
      case SamplerKind::kUniPC:
        return unipc.next_step;
      case SamplerKind::kEuler:
        return euler.next_step;
      case SamplerKind::kFewStep:
        return few_step.next_step;
    }
    return 0;
  }
};

// `seed` is the request's seed (the fewstep sampler re-noises from it; the others ignore it).
SamplerState MakeSamplerState(SamplerKind kind, const UniPCOptions& unipc_options = {},
                              uint64_t seed = 0);

// The schedule a resolved request samples: the fewstep sampler's timestep list
// (params::FewStepTimesteps through MakeTimestepSchedule), else MakeFlowSchedule(steps, shift).
absl::StatusOr<FlowSchedule> MakeRequestSchedule(const params::GenerationParams& params,
                                                 const params::ModelLimits& limits);

// Dispatches to UniPCStep / EulerStep / FewStepStep (same contract).
absl::StatusOr<torch::Tensor> SamplerStep(const FlowSchedule& schedule, SamplerState& state,
                                          int64_t step_index, const torch::Tensor& model_output,
                                          const torch::Tensor& sample);

// The model: velocity for sample `x` at integer timestep `timestep` (schedule.timesteps[i]).
// A callable returning torch::Tensor converts to this type too.
using DenoiseFn =
    std::function<absl::StatusOr<torch::Tensor>(const torch::Tensor& x, int64_t timestep)>;

// Runs every step of `schedule` from the initial noise x_T and returns the final sample (x at
// sigma = 0). Errors from `denoise` are returned annotated with the step index. `seed` feeds the
// fewstep sampler's re-noising.
absl::StatusOr<torch::Tensor> Sample(const FlowSchedule& schedule, SamplerKind kind,
                                     const torch::Tensor& x_T, const DenoiseFn& denoise,
                                     const UniPCOptions& unipc_options = {}, uint64_t seed = 0);

}  // namespace linvideo::core::sampling
