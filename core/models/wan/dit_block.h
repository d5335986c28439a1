#pragma once
// The transformer block of the Wan DiT and its parts. Submodule and parameter names are the
// official ones (wan/modules/model.py), so a block's state dict has the original keys:
//   norm3.{weight,bias} (only with cross_attn_norm), self_attn.{q,k,v,o,norm_q,norm_k},
//   self_attn.attn_core.* (parameters of non-softmax attention kinds), cross_attn.{q,k,v,o,
//   norm_q,norm_k}, ffn.0, ffn.2, modulation [1, 6, dim].
//
// Modules are read-only during forward, so one instance may serve concurrent forwards.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "core/attention/attention.h"
#include "core/models/wan/rope.h"

namespace linvideo::core::wan {

// RMSNorm over the whole last dim with a learned scale ("weight", ones at init).
class WanRMSNormImpl : public torch::nn::Module {
 public:
  WanRMSNormImpl(int64_t dim, double eps);
  // x [..., dim] -> fp32 [..., dim].
  torch::Tensor forward(const torch::Tensor& x) const;
  double eps() const { return eps_; }
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(WanRMSNorm);

// q/k/v/o projections and optional q/k RMSNorm shared by self- and cross-attention.
class WanAttentionProjections : public torch::nn::Module {
 public:
  WanAttentionProjections(int64_t dim, int64_t num_heads, bool qk_norm, double eps);

  int64_t num_heads() const { return num_heads_; }
  int64_t head_dim() const { return head_dim_; }
  // x [B, N, dim] -> normed q (fp32) [B, N, heads, head_dim].
  torch::Tensor Query(const torch::Tensor& x) const;
  // Normed k (fp32) and v (runtime dtype) of `source` [B, L, dim], each [B, L, heads, head_dim].
  std::pair<torch::Tensor, torch::Tensor> KeyValue(const torch::Tensor& source) const;
  // Attention output [B, N, heads, head_dim] -> [B, N, dim] (runtime dtype).
  torch::Tensor Output(const torch::Tensor& heads_out) const;
  // A projection [B, L, dim] -> [B, L, heads, head_dim], as it is (Heads) or through `norm`
  // (fp32; without a norm cast to fp32: NormedHeads).
  torch::Tensor Heads(const torch::Tensor& projected) const;
  torch::Tensor NormedHeads(const torch::Tensor& projected, const WanRMSNorm& norm) const;

  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  WanRMSNorm norm_q{nullptr}, norm_k{nullptr};  // null without qk_norm

 protected:
  int64_t num_heads_;
  int64_t head_dim_;
};

// Self-attention: projections, 3-axis RoPE on q and k, then the layer's attention core.
class WanSelfAttentionImpl : public WanAttentionProjections {
 public:
  WanSelfAttentionImpl(int64_t dim, int64_t num_heads, bool qk_norm, double eps,
                       std::shared_ptr<attention::AttentionCoreImpl> core);
  // x [B, N, dim] (fp32, modulated) -> [B, N, dim].
  torch::Tensor forward(const torch::Tensor& x, const RopeTable& rope);
  std::shared_ptr<attention::AttentionCoreImpl> attn_core;
};
TORCH_MODULE(WanSelfAttention);

// Text cross-attention over all text_len context slots (no mask), softmax.
class WanCrossAttentionImpl : public WanAttentionProjections {
 public:
  WanCrossAttentionImpl(int64_t dim, int64_t num_heads, bool qk_norm, double eps);
  // x [B, N, dim]; key/value from KeyValue(context) -> [B, N, dim].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key,
                        const torch::Tensor& value);
};
TORCH_MODULE(WanCrossAttention);

struct WanBlockOptions {
  int64_t dim = 0;
  int64_t ffn_dim = 0;
  int64_t num_heads = 0;
  bool qk_norm = true;
  bool cross_attn_norm = true;
  double eps = 1e-6;
};

class WanAttentionBlockImpl : public torch::nn::Module {
 public:
  WanAttentionBlockImpl(const WanBlockOptions& options,
                        std::shared_ptr<attention::AttentionCoreImpl> core);

  // x [B, N, dim] fp32; e0 [B, 6, dim] fp32 (time projection); rope for the token grid;
  // context_key/value [B, L, heads, head_dim] from cross_attn->KeyValue(text) -> [B, N, dim] fp32.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& e0, const RopeTable& rope,
                        const torch::Tensor& context_key, const torch::Tensor& context_value);

  torch::nn::LayerNorm norm3{nullptr};  // null without cross_attn_norm
  WanSelfAttention self_attn{nullptr};
  WanCrossAttention cross_attn{nullptr};
  torch::nn::Sequential ffn{nullptr};  // 0: Linear(dim, ffn), 1: GELU(tanh), 2: Linear(ffn, dim)
  torch::Tensor modulation;            // [1, 6, dim]

  // The FFN's GELU: the vectorised kernel (default) or LibTorch's (dit::GeluTanh).
  void set_fused_gelu(bool fused) { fused_gelu_ = fused; }

 private:
  WanBlockOptions options_;
  bool fused_gelu_ = true;
  torch::nn::Linear ffn_in_{nullptr}, ffn_out_{nullptr};
};
TORCH_MODULE(WanAttentionBlock);

// Output head: LayerNorm, modulation by the time embedding e (not e0), Linear to patch values.
class WanHeadImpl : public torch::nn::Module {
 public:
  WanHeadImpl(int64_t dim, int64_t out_features, double eps);
  // x [B, N, dim] fp32, e [B, dim] fp32 -> [B, N, out_features] fp32.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& e);

  torch::nn::Linear head{nullptr};
  torch::Tensor modulation;  // [1, 2, dim]

 private:
  double eps_;
};
TORCH_MODULE(WanHead);

}  // namespace linvideo::core::wan
