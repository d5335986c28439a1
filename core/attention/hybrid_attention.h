#pragma once
// LinVideo hybrid attention core (kind kHybrid) used during selective transfer:
//   o = r·softmax_attn(q, k, v) + (1 − r)·linear_attn(q, k, v)
// with one learnable scalar r per layer, clamped to [0, 1] in forward (the stored value may drift
// outside; the clamp is what the output sees). When the clamped r is exactly 1 (or 0) only the
// softmax (or linear) branch runs — except while autograd needs dL/dr (grad mode on and r requires
// grad), where both branches run because dL/dr = <dL/do, softmax − linear>.
//
// Parameters (under blocks.N.self_attn.attn_core): feature_map_q, feature_map_k (as in
// LinearAttentionCore, so a trained hybrid layer converts to a linear one by dropping r) and
//   r  []  the gate (0-dim fp32 tensor).
// Thread safety: forward() may be called concurrently (counters are atomic).

#include <torch/types.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/attention/linear_attention.h"

namespace linvideo::core::attention {

class HybridAttentionCoreImpl : public LinearAttentionCoreImpl {
 public:
  // Validates as LinearAttentionCore plus hybrid_r_init in [0, 1].
  static absl::StatusOr<std::shared_ptr<HybridAttentionCoreImpl>> Create(
      const AttentionCoreOptions& options);
  HybridAttentionCoreImpl(int64_t num_heads, int64_t head_dim, double eps, double r_init);

  AttentionKind kind() const override { return AttentionKind::kHybrid; }
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k,
                        const torch::Tensor& v) override;

  const torch::Tensor& r() const { return r_; }
  // Sets the stored gate (no clamping; forward clamps).
  void set_r(double value);
  // How often the softmax branch ran.
  int64_t softmax_calls() const { return softmax_calls_.load(); }

 private:
  torch::Tensor r_;  // [] fp32
  std::atomic<int64_t> softmax_calls_{0};
};

}  // namespace linvideo::core::attention
