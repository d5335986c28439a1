#pragma once
// Memory-bounded softmax (scaled dot-product) attention.

#include <torch/types.h>

#include <cstdint>

#include "core/attention/attention.h"

namespace linvideo::core::attention {

// Bytes of scores one query chunk may use; chunks are sized so that B·heads·chunk·Nk·4 stays under
// it, so attention over 32,760 tokens never materialises the N² score matrix.
inline constexpr int64_t kDefaultScoreBudgetBytes = int64_t{256} << 20;

// q: [B, Nq, H, D], k/v: [B, Nk, H, D] -> [B, Nq, H, D], softmax(q kᵀ · scale) v with
// scale = 1/sqrt(D) unless given. Computes in q's dtype (bf16 accumulates through fp32 BLAS).
// On CUDA with LibTorch >= 2 it uses at::scaled_dot_product_attention (flash / efficient kernels).
torch::Tensor SoftmaxAttention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale = 0.0,
                               int64_t score_budget_bytes = kDefaultScoreBudgetBytes);

class SoftmaxAttentionCoreImpl : public AttentionCoreImpl {
 public:
  AttentionKind kind() const override { return AttentionKind::kSoftmax; }
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k,
                        const torch::Tensor& v) override {
    return SoftmaxAttention(q, k, v);
  }
};

}  // namespace linvideo::core::attention
