#pragma once
// LinVideo linear attention core (kind kLinear): Hedgehog feature maps with learnable per-head
// weights for q and k, identity-initialised, over the layer's already projected, RMS-normed and
// RoPE'd q/k/v (the DiT applies norm then RoPE before the core, for every kind alike, in training
// and inference).
//
// Parameters (registered on this module; the DiT names it blocks.N.self_attn.attn_core):
//   feature_map_q  [heads, head_dim, head_dim]  W̃ of φ(q), identity at creation
//   feature_map_k  [heads, head_dim, head_dim]  W̃ of φ(k), identity at creation
// Thread safety: forward() is safe to call concurrently (no mutable state besides call counters).

#include <torch/nn/module.h>
#include <torch/types.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/attention/attention.h"

namespace linvideo::core::attention {

class LinearAttentionCoreImpl : public AttentionCoreImpl {
 public:
  // Validates num_heads / head_dim > 0 and linear_eps > 0 (options.kind is not checked).
  static absl::StatusOr<std::shared_ptr<LinearAttentionCoreImpl>> Create(
      const AttentionCoreOptions& options);
  LinearAttentionCoreImpl(int64_t num_heads, int64_t head_dim, double eps);

  AttentionKind kind() const override { return AttentionKind::kLinear; }
  // q, k, v: [B, N, heads, head_dim] -> [B, N, heads, head_dim] in v's dtype. Uses the fused CUDA
  // kernel for CUDA inference and the chunked (differentiable) path otherwise.
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k,
                        const torch::Tensor& v) override;

  // Sets both feature maps back to the identity (the untrained LinVideo starting point).
  void ResetToIdentity();

  const torch::Tensor& feature_map_q() const { return feature_map_q_; }
  const torch::Tensor& feature_map_k() const { return feature_map_k_; }
  int64_t num_heads() const { return num_heads_; }
  int64_t head_dim() const { return head_dim_; }
  double eps() const { return eps_; }
  // How often the linear branch ran (forward() of this core and of HybridAttentionCore).
  int64_t linear_calls() const { return linear_calls_.load(); }

 protected:
  // The linear branch itself; counts the call.
  torch::Tensor LinearBranch(const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v);

 private:
  int64_t num_heads_;
  int64_t head_dim_;
  double eps_;
  torch::Tensor feature_map_q_;  // [heads, head_dim, head_dim]
  torch::Tensor feature_map_k_;  // [heads, head_dim, head_dim]
  std::atomic<int64_t> linear_calls_{0};
};

}  // namespace linvideo::core::attention
