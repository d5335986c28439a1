#pragma once
// Functional pieces of the Wan DiT, shared by the block and the model and tested on their own:
// time embedding, patchify/unpatchify, norms with modulation, linear layers in the runtime dtype.
//
// Conventions: "runtime dtype" is the dtype of a layer's weight (fp32, or bf16 for the big
// matmuls); norms, modulation and residuals are computed in fp32 as the official code's autocast
// does. Functions mutate their own temporaries in place only when autograd is off (GradMode
// disabled, e.g. under InferenceMode), so the same code serves training.

#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <array>
#include <cstdint>

// In a nested namespace: these short names (Linear, RmsNorm, ...) would otherwise collide with
// helpers of the other Wan modules in linvideo::core::wan.
namespace linvideo::core::wan::dit {

// True when in-place updates of temporaries are safe (no autograd recording).
bool CanMutateInPlace();

// `t` as fp32 (no copy when it already is): norms, modulation and time embeddings run in fp32.
inline at::Tensor Float(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat ? t : t.to(at::kFloat);
}

// t [B] (any numeric dtype) -> [B, dim] float32: [cos(t·ω), sin(t·ω)], ω_j = 10000^(-j/(dim/2)),
// computed in float64 like the official sinusoidal_embedding_1d.
torch::Tensor SinusoidalEmbedding(int64_t dim, const torch::Tensor& t);

// x [B, C, F, H, W] -> patch vectors [B, F'·H'·W', C·pt·ph·pw] in (c, kt, kh, kw) order, tokens
// row-major over (f', h', w'): a matmul with the Conv3d weight flattened to [dim, C·pt·ph·pw]
// equals the strided Conv3d (kernel == stride) of the official patch embedding.
torch::Tensor Patchify(const torch::Tensor& x, const std::array<int64_t, 3>& patch);

// tokens [B, F'·H'·W', pt·ph·pw·C] (channel fastest) -> [B, C, F'·pt, H'·ph, W'·pw], the official
// unpatchify (einsum fhwpqrc -> cfphqwr).
torch::Tensor Unpatchify(const torch::Tensor& tokens, const std::array<int64_t, 3>& grid,
                         const std::array<int64_t, 3>& patch, int64_t channels);

// x [..., in] -> [..., out] = x Wᵀ + b as one addmm over a 2D view; x is cast to W's dtype.
torch::Tensor Linear(const torch::Tensor& x, const torch::nn::Linear& layer);

// LayerNorm without affine over the last dim, in fp32, then · (1 + scale) + shift.
// x [B, N, C]; scale_plus_one, shift [B, 1, C] fp32 -> [B, N, C] fp32.
torch::Tensor ModulatedLayerNorm(const torch::Tensor& x, const torch::Tensor& scale_plus_one,
                                 const torch::Tensor& shift, double eps);

// WanRMSNorm: x · rsqrt(mean(x², -1) + eps) · weight, computed in fp32; returns fp32.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// GELU(tanh) of a temporary (in place when autograd is off). `fused`: kernels::GeluTanh, one
// vectorised fp32 pass (4-7x LibTorch's CPU kernel, kernels/gelu_tanh.h); otherwise
// at::gelu(x, "tanh"), whose bf16 path rounds to bf16 along the way (what the v5
// default model was trained with).
torch::Tensor GeluTanh(torch::Tensor x, bool fused);

// x + y · gate in fp32 (x fp32 [B, N, C], y any dtype, gate [B, 1, C] fp32).
torch::Tensor GatedResidual(const torch::Tensor& x, const torch::Tensor& y,
                            const torch::Tensor& gate);

}  // namespace linvideo::core::wan::dit
