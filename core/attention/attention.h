#pragma once
// The attention interface of a DiT self-attention layer. A layer's kind is data (one entry per
// layer in the model config), turned into an AttentionCore by MakeAttentionCore(); the DiT never
// branches on the kind itself.
//
// An AttentionCore maps projected, normalised and RoPE'd q, k, v to the per-head output; the
// layer's q/k/v/o projections stay in the DiT block (linear attention reuses them, as in LinVideo).

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace linvideo::core::attention {

enum class AttentionKind { kSoftmax, kLinear, kHybrid };

// "softmax" | "linear" | "hybrid"; the error lists the allowed names.
absl::StatusOr<AttentionKind> ParseAttentionKind(const std::string& name);
std::string AttentionKindName(AttentionKind kind);

struct AttentionCoreOptions {
  AttentionKind kind = AttentionKind::kSoftmax;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  // kLinear / kHybrid: ε in the normaliser φ(q)·Σφ(k) + ε (see kernels/linear_attention.h).
  double linear_eps = 1e-6;
  // kHybrid: initial gate r (o = r·softmax + (1−r)·linear), in [0, 1].
  double hybrid_r_init = 0.5;
};

// Base of all attention kinds. Parameters of a kind (e.g. feature maps) are registered inside the
// core, which the DiT registers as submodule "attn_core" of the layer's self_attn.
class AttentionCoreImpl : public torch::nn::Module {
 public:
  ~AttentionCoreImpl() override = default;
  virtual AttentionKind kind() const = 0;
  // q, k, v: [B, N, heads, head_dim] (any dtype the runtime uses) -> [B, N, heads, head_dim].
  virtual torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v) = 0;
};

// Creates the core for one layer. Kinds not yet compiled in return UNIMPLEMENTED.
absl::StatusOr<std::shared_ptr<AttentionCoreImpl>> MakeAttentionCore(
    const AttentionCoreOptions& options);

}  // namespace linvideo::core::attention
