#pragma once
// Fused RMSNorm + RoPE + cast for the Wan self-attention's queries and keys on CUDA:
//   y[b, n, h, :] = RoPE_n( x[b, n, :] · rsqrt(mean(x[b, n, :]²) + eps) · weight )[h]
// in fp32, rounded once to x's type (bf16 or fp32): what core/models/wan does with WanRMSNorm,
// ApplyRope and the cast to the values' type, in one read and one write of the row instead of ~9
// passes over an fp32 copy. Inference only (no autograd). LINVIDEO_FUSED_NORM_ROPE=0 in the
// environment turns it off (read once), for comparing or as a fallback.

#include <ATen/ATen.h>

namespace linvideo::kernels {

// True where RmsNormRopeFused runs: a build with the CUDA kernels, `x` a contiguous CUDA tensor of
// bf16 or fp32 equal to `out_dtype`, grad mode off, and the environment switch not 0.
bool RmsNormRopeFusedApplies(const at::Tensor& x, c10::ScalarType out_dtype);

// x [B, N, C] (C = heads · head_dim), weight [C] (any float type), cos / sin [N, 1, head_dim / 2]
// fp32 (core/models/wan/rope.h's RopeTable) -> [B, N, heads, head_dim] in x's type. Checks its
// arguments (c10::Error naming the expected shapes); callers check RmsNormRopeFusedApplies first.
at::Tensor RmsNormRopeFused(const at::Tensor& x, const at::Tensor& weight, double eps,
                            const at::Tensor& cos, const at::Tensor& sin, int64_t heads);

}  // namespace linvideo::kernels
