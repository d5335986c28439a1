#pragma once
// The selective-transfer student: the teacher's DiT with every unpinned self-attention layer turned
// hybrid (o = r·softmax + (1 − r)·linear, r = r_init, Hedgehog feature maps at identity) and every
// other weight copied from the teacher. At r = 1 the student computes exactly what the teacher
// does; training then moves the gates (core/posttrain/selective_transfer.h) and the feature maps.
// Not thread-safe while training.

#include <torch/types.h>

#include <vector>

#include "absl/status/statusor.h"
#include "core/models/wan/dit.h"
#include "core/posttrain/selective_transfer.h"

namespace linvideo::core::posttrain {

// `options.num_layers` must equal the teacher's; validated with ValidateSelection. The student is
// on the teacher's device, in fp32.
absl::StatusOr<wan::WanModel> MakeHybridStudent(wan::WanModel& teacher,
                                                const SelectionOptions& options,
                                                double r_init = 1.0);

// The teacher with exactly `linear` layers turned linear (feature maps at identity; fixed-layer
// training and the heuristic's probes), every other weight copied; fp32 on the teacher's device.
// INVALID_ARGUMENT for an index outside [0, L) or a repeated one.
absl::StatusOr<wan::WanModel> MakeLinearStudent(wan::WanModel& teacher,
                                                const std::vector<int64_t>& linear);

// The model's velocity at (x, t, context) under bf16 autocast when `bf16` is set, returned fp32
// (t: [B] timesteps on the 1000-step grid, as float).
torch::Tensor Velocity(wan::WanModel& model, const torch::Tensor& x, const torch::Tensor& t,
                       const torch::Tensor& context, bool bf16);

// The student's gates r ([] fp32 parameters), in HybridLayers order. FAILED_PRECONDITION when a
// layer listed by HybridLayers(options) is not hybrid.
absl::StatusOr<std::vector<torch::Tensor>> HybridGates(wan::WanModel& student,
                                                       const SelectionOptions& options);

}  // namespace linvideo::core::posttrain
