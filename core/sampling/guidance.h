#pragma once
// Classifier-free guidance: v = v_uncond + scale * (v_cond - v_uncond), and helpers that run the
// conditional and unconditional passes of several requests as one model batch.
// Pure functions; thread-safe.

#include <torch/types.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace linvideo::core::sampling {

// uncond + scale * (cond - uncond), in the same operation order as the official Wan code.
torch::Tensor ApplyGuidance(const torch::Tensor& cond_out, const torch::Tensor& uncond_out,
                            double scale);

// Splits a [2B, ...] output of a [x; x] / [cond; uncond] batch into ([B, ...] cond, [B, ...]
// uncond). INVALID_ARGUMENT for an undefined tensor or an odd/zero leading dimension.
absl::StatusOr<std::pair<torch::Tensor, torch::Tensor>> SplitCondUncond(const torch::Tensor& out);

// One model batch for several requests. Row i < B is request i with its conditional context; the
// requests that use guidance follow again, in order, with their unconditional context:
//   x       = [x_0 .. x_{B-1}, x_g0, x_g1, ...]          [B + U, ...]
//   context = [c_0 .. c_{B-1}, u_g0, u_g1, ...]          [B + U, ...]
// With every request guided this is exactly [x; x] and [c; u].
struct GuidanceBatch {
  torch::Tensor x;
  torch::Tensor context;
  std::vector<int64_t> guided;  // request index of uncond row B + k
  std::vector<double> scales;   // per request
  int64_t requests = 0;         // B
};

// `x[i]` and `cond[i]` are request i's sample and context without a batch dimension (all requests
// alike in shape and dtype); `uncond[i]` is undefined for a request without guidance. `scales[i]`
// is its guidance scale (ignored without uncond). INVALID_ARGUMENT on size or shape mismatches.
absl::StatusOr<GuidanceBatch> MakeGuidanceBatch(const std::vector<torch::Tensor>& x,
                                                const std::vector<torch::Tensor>& cond,
                                                const std::vector<torch::Tensor>& uncond,
                                                const std::vector<double>& scales);

// Turns the model output for a GuidanceBatch ([B + U, ...]) into one guided velocity per request
// (no batch dimension). A request's result depends only on its own rows.
absl::StatusOr<std::vector<torch::Tensor>> CombineGuidance(const GuidanceBatch& batch,
                                                           const torch::Tensor& model_out);

}  // namespace linvideo::core::sampling
