#pragma once
// Internal to kernels/: the fused fp32 CPU inference path behind LinearAttentionComposite (no
// autograd). It reads q, k, v and writes the output in their [B, N, H, D] layout (any row/head
// strides, unit stride along D), computes φ, its normalisation and the denominator in one
// vectorised pass per row, and leaves the three GEMMs per chunk to BLAS. Stateless, thread-safe.

#include <torch/types.h>

#include <cstdint>

namespace linvideo::kernels {

// True for CPU fp32 q, k, v with unit stride along head_dim (the case this path handles).
bool LinearAttentionFusedCpuApplies(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v);

// Same contract as LinearAttentionComposite for the inputs above (arguments already checked).
torch::Tensor LinearAttentionFusedCpu(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, const torch::Tensor& w_q,
                                      const torch::Tensor& w_k, double eps, int64_t chunk);

}  // namespace linvideo::kernels
