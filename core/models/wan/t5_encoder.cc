#include "core/models/wan/t5_encoder.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/common/status.h"
#include "core/io/state_dict.h"
#include "core/models/wan/t5_key_map.h"

namespace linvideo::core::wan {
namespace {

// The dtype a linear layer multiplies in. On CUDA the weight's own dtype (bf16/fp16 tensor cores).
// On CPU, LibTorch 1.13's reduced-precision GEMM is slower than fp32 on most CPUs without AMX, so
// reduced-precision weights are widened per call: they still halve resident memory, and the cost of
// widening is O(weights) against O(weights * tokens) for the matmul.
torch::Tensor Linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  const torch::Tensor& w = layer->weight;
  if (w.scalar_type() == at::kFloat) return at::linear(x, w);  // [..., out]
  if (w.is_cuda()) return at::linear(x.to(w.scalar_type()), w).to(at::kFloat);
  return at::linear(x, w.to(at::kFloat));
}

// GELU with the tanh approximation, written out as in the official code (HF: "gelu_new").
torch::Tensor GeluTanh(const torch::Tensor& x) {
  return 0.5 * x * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3.0))));
}

void InitLinear(torch::nn::Linear& layer, double std) {
  torch::NoGradGuard no_grad;
  layer->weight.normal_(0.0, std);
}

}  // namespace

T5LayerNormImpl::T5LayerNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor T5LayerNormImpl::forward(const torch::Tensor& x) {
  torch::Tensor xf = x.to(at::kFloat);
  torch::Tensor y = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps_);  // [..., dim]
  return weight * y;
}

T5RelativeEmbeddingImpl::T5RelativeEmbeddingImpl(int64_t num_buckets, int64_t num_heads,
                                                 int64_t max_distance, bool bidirectional)
    : num_buckets_(num_buckets), max_distance_(max_distance), bidirectional_(bidirectional) {
  embedding = register_module("embedding", torch::nn::Embedding(num_buckets, num_heads));
}

torch::Tensor T5RelativeEmbeddingImpl::Bucket(const torch::Tensor& rel_pos, int64_t num_buckets,
                                              int64_t max_distance, bool bidirectional) {
  torch::Tensor buckets = at::zeros_like(rel_pos, rel_pos.options().dtype(at::kLong));
  torch::Tensor distance;  // non-negative distance within one direction
  if (bidirectional) {
    num_buckets /= 2;
    buckets = (rel_pos > 0).to(at::kLong) * num_buckets;
    distance = rel_pos.abs();
  } else {
    distance = -at::min(rel_pos, at::zeros_like(rel_pos));
  }
  const int64_t max_exact = num_buckets / 2;
  // Same op order as the official code (fp32 log, then integer truncation) so the bucket edges
  // agree exactly. log(0) = -inf only appears where the exact branch is taken.
  torch::Tensor large =
      max_exact + (at::log(distance.to(at::kFloat) / static_cast<double>(max_exact)) /
                   std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                   static_cast<double>(num_buckets - max_exact))
                      .to(at::kLong);
  large = at::min(large, at::full_like(large, num_buckets - 1));
  return buckets + at::where(distance < max_exact, distance.to(at::kLong), large);
}

torch::Tensor T5RelativeEmbeddingImpl::forward(int64_t lq, int64_t lk) {
  auto opts = torch::TensorOptions().dtype(at::kLong).device(embedding->weight.device());
  torch::Tensor rel_pos =
      at::arange(lk, opts).unsqueeze(0) - at::arange(lq, opts).unsqueeze(1);  // [lq, lk] = j - i
  torch::Tensor bucket = Bucket(rel_pos, num_buckets_, max_distance_, bidirectional_);
  torch::Tensor bias = embedding->forward(bucket).to(at::kFloat);  // [lq, lk, H]
  return bias.permute({2, 0, 1}).unsqueeze(0).contiguous();        // [1, H, lq, lk]
}

T5AttentionImpl::T5AttentionImpl(const T5Config& c, const DeviceOptions& options)
    : num_heads_(c.num_heads), head_dim_(c.head_dim()) {
  auto linear = [](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  q = register_module("q", linear(c.dim, c.dim_attn));
  k = register_module("k", linear(c.dim, c.dim_attn));
  v = register_module("v", linear(c.dim, c.dim_attn));
  o = register_module("o", linear(c.dim_attn, c.dim));
  InitLinear(q, std::pow(static_cast<double>(c.dim * c.dim_attn), -0.5));
  InitLinear(k, std::pow(static_cast<double>(c.dim), -0.5));
  InitLinear(v, std::pow(static_cast<double>(c.dim), -0.5));
  InitLinear(o, std::pow(static_cast<double>(c.num_heads * c.dim_attn), -0.5));
  for (auto* l : {&q, &k, &v, &o}) (*l)->to(options.dtype);
}

torch::Tensor T5AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask,
                                       const torch::Tensor& pos_bias) {
  const int64_t b = x.size(0), l = x.size(1), n = num_heads_, c = head_dim_;
  torch::Tensor qh = Linear(q, x).view({b, l, n, c}).permute({0, 2, 1, 3});  // [B, H, L, c]
  torch::Tensor kh = Linear(k, x).view({b, l, n, c}).permute({0, 2, 3, 1});  // [B, H, c, L]
  torch::Tensor vh = Linear(v, x).view({b, l, n, c}).permute({0, 2, 1, 3});  // [B, H, L, c]

  // Additive bias as in the official code: position bias, then masked keys *replaced* by the
  // lowest finite float (not -inf, so a fully padded row degrades to a uniform softmax instead of
  // NaN). Only keys are masked: rows at padded query positions still attend to the real tokens.
  torch::Tensor bias = pos_bias.defined()
                           ? pos_bias.to(at::kFloat).expand({b, n, l, l}).contiguous()
                           : at::zeros({b, n, l, l}, x.options().dtype(at::kFloat));  // [B,H,L,L]
  if (key_mask.defined()) {
    bias.masked_fill_(key_mask.view({b, 1, 1, l}) == 0, std::numeric_limits<float>::lowest());
  }
  // No 1/sqrt(head_dim) scaling in T5 (folded into the q initialisation during training).
  torch::Tensor attn = at::softmax(at::matmul(qh, kh) + bias, -1);  // [B, H, L, L]
  torch::Tensor out = at::matmul(attn, vh);                         // [B, H, L, c]
  out = out.permute({0, 2, 1, 3}).reshape({b, l, n * c});           // [B, L, dim_attn]
  return Linear(o, out);                                            // [B, L, dim]
}

T5FeedForwardImpl::T5FeedForwardImpl(const T5Config& c, const DeviceOptions& options) {
  auto linear = [](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  gate0_ = linear(c.dim, c.dim_ffn);
  fc1 = linear(c.dim, c.dim_ffn);
  fc2 = linear(c.dim_ffn, c.dim);
  InitLinear(gate0_, std::pow(static_cast<double>(c.dim), -0.5));
  InitLinear(fc1, std::pow(static_cast<double>(c.dim), -0.5));
  InitLinear(fc2, std::pow(static_cast<double>(c.dim_ffn), -0.5));
  for (auto* l : {&gate0_, &fc1, &fc2}) (*l)->to(options.dtype);
  gate = register_module("gate", torch::nn::ModuleList(gate0_));  // "gate.0.weight"
  register_module("fc1", fc1);
  register_module("fc2", fc2);
}

torch::Tensor T5FeedForwardImpl::forward(const torch::Tensor& x) {
  torch::Tensor g = GeluTanh(Linear(gate0_, x));  // [B, L, dim_ffn]
  torch::Tensor h = Linear(fc1, x) * g;           // [B, L, dim_ffn]
  return Linear(fc2, h);                          // [B, L, dim]
}

T5BlockImpl::T5BlockImpl(const T5Config& c, const DeviceOptions& options) {
  norm1 = register_module("norm1", T5LayerNorm(c.dim, c.eps));
  attn = register_module("attn", T5Attention(c, options));
  norm2 = register_module("norm2", T5LayerNorm(c.dim, c.eps));
  ffn = register_module("ffn", T5FeedForward(c, options));
  if (!c.shared_pos) {
    pos_embedding = register_module(
        "pos_embedding",
        T5RelativeEmbedding(c.num_buckets, c.num_heads, c.max_distance, /*bidirectional=*/true));
    torch::NoGradGuard no_grad;
    pos_embedding->embedding->weight.normal_(
        0.0, std::pow(static_cast<double>(2 * c.num_buckets * c.num_heads), -0.5));
  }
}

torch::Tensor T5BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask,
                                   const torch::Tensor& pos_bias) {
  torch::Tensor e = pos_embedding ? pos_embedding->forward(x.size(1), x.size(1)) : pos_bias;
  torch::Tensor y = x + attn->forward(norm1->forward(x), key_mask, e);  // [B, L, dim]
  return y + ffn->forward(norm2->forward(y));
}

T5EncoderImpl::T5EncoderImpl(const T5Config& c, const DeviceOptions& options)
    : config_(c), options_(options) {
  token_embedding = register_module("token_embedding", torch::nn::Embedding(c.vocab, c.dim));
  {
    torch::NoGradGuard no_grad;
    token_embedding->weight.normal_(0.0, 1.0);
  }
  token_embedding->to(options.dtype);
  if (c.shared_pos) {
    pos_embedding = register_module(
        "pos_embedding",
        T5RelativeEmbedding(c.num_buckets, c.num_heads, c.max_distance, /*bidirectional=*/true));
    torch::NoGradGuard no_grad;
    pos_embedding->embedding->weight.normal_(
        0.0, std::pow(static_cast<double>(2 * c.num_buckets * c.num_heads), -0.5));
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) blocks->push_back(T5Block(c, options));
  norm = register_module("norm", T5LayerNorm(c.dim, c.eps));
}

torch::Tensor T5EncoderImpl::forward(const torch::Tensor& ids, const torch::Tensor& mask) {
  torch::Tensor x = token_embedding->forward(ids).to(at::kFloat);  // [B, L, dim]
  const int64_t l = ids.size(1);
  torch::Tensor e = pos_embedding ? pos_embedding->forward(l, l) : torch::Tensor();
  for (const auto& block : *blocks) {
    x = block->as<T5BlockImpl>()->forward(x, mask, e);  // [B, L, dim]
  }
  return norm->forward(x);
}

absl::StatusOr<torch::Tensor> T5EncoderImpl::Encode(const torch::Tensor& ids,
                                                    const torch::Tensor& mask) {
  if (!ids.defined() || ids.dim() != 2 || ids.size(1) == 0 ||
      (ids.scalar_type() != at::kLong && ids.scalar_type() != at::kInt)) {
    return absl::InvalidArgumentError(
        "T5 encode: ids must be a non-empty [B, L] int64/int32 tensor");
  }
  if (!mask.defined() || mask.sizes() != ids.sizes() ||
      !(mask.scalar_type() == at::kLong || mask.scalar_type() == at::kInt ||
        mask.scalar_type() == at::kBool)) {
    return absl::InvalidArgumentError(
        absl::StrCat("T5 encode: mask must be an int64/int32/bool tensor of the ids' shape [",
                     ids.size(0), ", ", ids.size(1), "]"));
  }
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= config_.vocab) {
    return absl::InvalidArgumentError(absl::StrCat("T5 encode: token ids must be in [0, ",
                                                   config_.vocab, "), got [", lo, ", ", hi, "]"));
  }
  return TorchCall("T5 encode", [&]() {
    torch::NoGradGuard no_grad;
    const torch::Device device = token_embedding->weight.device();
    torch::Tensor m = mask.to(device, at::kLong);
    torch::Tensor out = forward(ids.to(device, at::kLong), m);  // [B, L, dim]
    return out.masked_fill(m.unsqueeze(-1) == 0, 0.0);
  });
}

absl::StatusOr<T5Encoder> CreateT5Encoder(const T5Config& config, const DeviceOptions& options) {
  LV_RETURN_IF_ERROR(config.Validate());
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16 && options.dtype != at::kHalf) {
    return absl::InvalidArgumentError(absl::StrCat(
        "T5 encoder: unsupported dtype ", DtypeName(options.dtype), "; allowed: fp32, bf16, fp16"));
  }
  return TorchCall("T5 encoder: create", [&]() {
    T5Encoder encoder(config, options);
    encoder->to(options.device);
    encoder->eval();
    return encoder;
  });
}

absl::Status LoadT5Weights(T5EncoderImpl& encoder, const io::TensorMap& tensors) {
  LV_ASSIGN_OR_RETURN(io::TensorMap wan, ToWanT5(tensors, encoder.config().shared_pos));
  return Annotate(io::LoadStateDict(encoder, wan), "T5 encoder weights");
}

}  // namespace linvideo::core::wan
