#pragma once
// Softmax (scaled dot-product) attention, in two implementations:
//   - SoftmaxAttentionChunked: LibTorch ops over query chunks, memory-bounded (never materialises
//     the N² scores beyond one chunk), any device; differentiable when autograd records.
//   - at::scaled_dot_product_attention (LibTorch >= 2, flash / memory-efficient kernels) on CUDA.
// SoftmaxAttention() dispatches between them. Stateless and thread-safe.

#include <torch/types.h>

#include <cstdint>

namespace linvideo::kernels {

// Bytes of scores one query chunk may use; chunks are sized so that B·heads·chunk·Nk·4 stays under
// it, so attention over 32,760 tokens never materialises the N² score matrix.
inline constexpr int64_t kDefaultScoreBudgetBytes = int64_t{256} << 20;

// q: [B, Nq, H, D], k/v: [B, Nk, H, D] -> [B, Nq, H, D], softmax(q kᵀ · scale) v with
// scale = 1/sqrt(D) unless given. Computes in q's dtype (bf16 accumulates through fp32 BLAS).
// On CUDA with LibTorch >= 2 it uses at::scaled_dot_product_attention.
torch::Tensor SoftmaxAttention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale = 0.0,
                               int64_t score_budget_bytes = kDefaultScoreBudgetBytes);

// The chunked composite path on any device (what SoftmaxAttention runs off CUDA).
torch::Tensor SoftmaxAttentionChunked(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, double scale = 0.0,
                                      int64_t score_budget_bytes = kDefaultScoreBudgetBytes);

}  // namespace linvideo::kernels
