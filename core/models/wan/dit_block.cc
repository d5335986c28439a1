#include "core/models/wan/dit_block.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>

#include <cmath>

#include "core/models/wan/dit_ops.h"
#include "kernels/rms_norm_rope.h"
#include "kernels/softmax_attention.h"

namespace linvideo::core::wan {
namespace {

using dit::CanMutateInPlace;
using dit::Float;
using dit::GatedResidual;
using dit::Linear;
using dit::ModulatedLayerNorm;
using dit::RmsNorm;

at::Tensor CastLike(const at::Tensor& t, const at::Tensor& like) {
  return t.scalar_type() == like.scalar_type() ? t : t.to(like.scalar_type());
}

// The official modulation init: randn / sqrt(dim).
at::Tensor RandomModulation(int64_t rows, int64_t dim) {
  return at::randn({1, rows, dim}).div_(std::sqrt(static_cast<double>(dim)));
}

}  // namespace

WanRMSNormImpl::WanRMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::ones({dim}));
}

torch::Tensor WanRMSNormImpl::forward(const torch::Tensor& x) const {
  return RmsNorm(x, weight, eps_);
}

WanAttentionProjections::WanAttentionProjections(int64_t dim, int64_t num_heads, bool qk_norm,
                                                 double eps)
    : num_heads_(num_heads), head_dim_(dim / num_heads) {
  q = register_module("q", torch::nn::Linear(dim, dim));
  k = register_module("k", torch::nn::Linear(dim, dim));
  v = register_module("v", torch::nn::Linear(dim, dim));
  o = register_module("o", torch::nn::Linear(dim, dim));
  if (qk_norm) {
    norm_q = register_module("norm_q", WanRMSNorm(dim, eps));
    norm_k = register_module("norm_k", WanRMSNorm(dim, eps));
  }
}

torch::Tensor WanAttentionProjections::Heads(const torch::Tensor& projected) const {
  return projected.view({projected.size(0), projected.size(1), num_heads_, head_dim_});
}

torch::Tensor WanAttentionProjections::NormedHeads(const torch::Tensor& projected,
                                                   const WanRMSNorm& norm) const {
  return Heads(norm ? norm->forward(projected) : Float(projected));
}

torch::Tensor WanAttentionProjections::Query(const torch::Tensor& x) const {
  return NormedHeads(Linear(x, q), norm_q);  // [B, N, H, D]
}

std::pair<torch::Tensor, torch::Tensor> WanAttentionProjections::KeyValue(
    const torch::Tensor& source) const {
  return {NormedHeads(Linear(source, k), norm_k), Heads(Linear(source, v))};  // [B, L, H, D]
}

torch::Tensor WanAttentionProjections::Output(const torch::Tensor& heads_out) const {
  return Linear(heads_out.flatten(2), o);  // [B, N, dim]
}

WanSelfAttentionImpl::WanSelfAttentionImpl(int64_t dim, int64_t num_heads, bool qk_norm, double eps,
                                           std::shared_ptr<attention::AttentionCoreImpl> core)
    : WanAttentionProjections(dim, num_heads, qk_norm, eps) {
  attn_core = register_module("attn_core", std::move(core));
}

torch::Tensor WanSelfAttentionImpl::forward(const torch::Tensor& x, const RopeTable& rope) {
  auto q_proj = Linear(x, q);              // [B, N, dim]
  const auto value = Heads(Linear(x, v));  // [B, N, H, D], runtime dtype
  // On CUDA, q/k RMSNorm + RoPE + the cast to the values' type as one kernel per tensor
  // (kernels/rms_norm_rope.h): the same fp32 arithmetic, one read and one write.
  if (norm_q && norm_k && kernels::RmsNormRopeFusedApplies(q_proj, value.scalar_type())) {
    auto query = kernels::RmsNormRopeFused(q_proj, norm_q->weight, norm_q->eps(), rope.cos,
                                           rope.sin, num_heads_);
    q_proj = at::Tensor();  // not held through the attention
    auto key = kernels::RmsNormRopeFused(Linear(x, k), norm_k->weight, norm_k->eps(), rope.cos,
                                         rope.sin, num_heads_);
    return Output(attn_core->forward(query, key, value));
  }
  auto query = ApplyRope(NormedHeads(q_proj, norm_q), rope);  // fp32, as the official rope_apply
  q_proj = at::Tensor();
  auto key = ApplyRope(NormedHeads(Linear(x, k), norm_k), rope);
  auto out = attn_core->forward(CastLike(query, value), CastLike(key, value), value);
  return Output(out);  // [B, N, dim]
}

WanCrossAttentionImpl::WanCrossAttentionImpl(int64_t dim, int64_t num_heads, bool qk_norm,
                                             double eps)
    : WanAttentionProjections(dim, num_heads, qk_norm, eps) {}

torch::Tensor WanCrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& key,
                                             const torch::Tensor& value) {
  auto query = Query(x);  // [B, N, H, D]
  auto out = kernels::SoftmaxAttention(CastLike(query, value), CastLike(key, value), value);
  return Output(out);  // [B, N, dim]
}

WanAttentionBlockImpl::WanAttentionBlockImpl(const WanBlockOptions& options,
                                             std::shared_ptr<attention::AttentionCoreImpl> core)
    : options_(options) {
  const int64_t dim = options.dim;
  // Own parameter first, then children in the official order (its state_dict order).
  modulation = register_parameter("modulation", RandomModulation(6, dim));
  self_attn = register_module("self_attn", WanSelfAttention(dim, options.num_heads, options.qk_norm,
                                                            options.eps, std::move(core)));
  if (options.cross_attn_norm) {
    norm3 = register_module(
        "norm3", torch::nn::LayerNorm(
                     torch::nn::LayerNormOptions({dim}).eps(options.eps).elementwise_affine(true)));
  }
  cross_attn = register_module(
      "cross_attn", WanCrossAttention(dim, options.num_heads, options.qk_norm, options.eps));
  ffn_in_ = torch::nn::Linear(dim, options.ffn_dim);
  ffn_out_ = torch::nn::Linear(options.ffn_dim, dim);
  ffn = register_module(
      "ffn", torch::nn::Sequential(
                 ffn_in_, torch::nn::GELU(torch::nn::GELUOptions().approximate("tanh")), ffn_out_));
}

torch::Tensor WanAttentionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& e0,
                                             const RopeTable& rope,
                                             const torch::Tensor& context_key,
                                             const torch::Tensor& context_value) {
  // Six [B, 1, dim] fp32 rows: shift, scale, gate (self-attn); shift, scale, gate (ffn).
  auto mod = at::add(modulation, e0);  // [B, 6, dim]
  auto row = [&](int64_t i) { return mod.narrow(1, i, 1); };
  auto scale_sa = row(1) + 1.0;
  auto scale_ffn = row(4) + 1.0;

  // Self-attention on the modulated norm; gated residual in fp32.
  auto y = self_attn->forward(ModulatedLayerNorm(x, scale_sa, row(0), options_.eps), rope);
  auto h = GatedResidual(x, y, row(2));  // [B, N, dim]

  // Cross-attention (no gate), on the affine-normed stream when cross_attn_norm.
  auto hn = norm3 ? at::layer_norm(h, {options_.dim}, norm3->weight, norm3->bias, options_.eps) : h;
  auto c = Float(cross_attn->forward(hn, context_key, context_value));
  h = CanMutateInPlace() ? h.add_(c) : h.add(c);

  // Feed-forward: Linear -> GELU(tanh) -> Linear on the modulated norm; gated residual.
  auto hidden = Linear(ModulatedLayerNorm(h, scale_ffn, row(3), options_.eps), ffn_in_);
  hidden = dit::GeluTanh(std::move(hidden), fused_gelu_);
  y = Linear(hidden, ffn_out_);
  hidden = at::Tensor();
  return GatedResidual(h, y, row(5));  // [B, N, dim]
}

WanHeadImpl::WanHeadImpl(int64_t dim, int64_t out_features, double eps) : eps_(eps) {
  modulation = register_parameter("modulation", RandomModulation(2, dim));
  head = register_module("head", torch::nn::Linear(dim, out_features));
}

torch::Tensor WanHeadImpl::forward(const torch::Tensor& x, const torch::Tensor& e) {
  auto mod = at::add(modulation, e.unsqueeze(1));  // [B, 2, dim]: shift, scale
  auto scale = mod.narrow(1, 1, 1) + 1.0;
  auto normed = ModulatedLayerNorm(x, scale, mod.narrow(1, 0, 1), eps_);  // [B, N, dim]
  return Float(Linear(normed, head));                                     // [B, N, out_features]
}

}  // namespace linvideo::core::wan
