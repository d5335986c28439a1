#pragma once
// umT5 / T5 text encoder (encoder stack only), numerically following the official Wan 2.1 T5Encoder
// (wan/modules/t5.py). Parameter names are the official ones:
//   token_embedding.weight                     [vocab, dim]
//   blocks.N.norm1.weight, blocks.N.norm2.weight            [dim]
//   blocks.N.attn.{q,k,v}.weight [dim_attn, dim], blocks.N.attn.o.weight [dim, dim_attn]
//   blocks.N.ffn.gate.0.weight, blocks.N.ffn.fc1.weight [dim_ffn, dim], blocks.N.ffn.fc2.weight
//   blocks.N.pos_embedding.embedding.weight    [num_buckets, num_heads]   (shared_pos == false)
//   pos_embedding.embedding.weight             [num_buckets, num_heads]   (shared_pos == true)
//   norm.weight                                [dim]
// (t5_key_map.h converts Hugging Face UMT5EncoderModel names.)
//
// Precision: the token embedding and the linear weights are stored in DeviceOptions::dtype (bf16
// halves umT5-XXL's 22 GB); the residual stream, the norms (weights kept fp32), the position bias,
// the attention scores/softmax and the GELU run in fp32; activations are cast to the weight dtype
// only as matmul inputs. With fp32 weights this is the official computation op for op.
//
// Thread safety: forward()/Encode() only read the parameters; concurrent calls are safe once
// loading has finished. Not for training (Encode() disables autograd).

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/common/runtime.h"
#include "core/io/safetensors.h"
#include "core/models/wan/t5_config.h"

namespace linvideo::core::wan {

// T5 RMS norm without mean subtraction or bias, computed in fp32: w * x / sqrt(mean(x^2) + eps).
class T5LayerNormImpl : public torch::nn::Module {
 public:
  T5LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // [..., dim] -> [..., dim] fp32

  torch::Tensor weight;  // [dim] fp32

 private:
  double eps_;
};
TORCH_MODULE(T5LayerNorm);

// Bucketed relative position -> per-head additive attention bias (official T5RelativeEmbedding).
class T5RelativeEmbeddingImpl : public torch::nn::Module {
 public:
  T5RelativeEmbeddingImpl(int64_t num_buckets, int64_t num_heads, int64_t max_distance,
                          bool bidirectional);
  // -> [1, num_heads, lq, lk] fp32, bias[., h, i, j] = table[bucket(j - i), h].
  torch::Tensor forward(int64_t lq, int64_t lk);

  // Bucket index of each relative position (key - query), int64, same shape as `rel_pos`.
  // Bidirectional: half the buckets per sign (positive offsets get +num_buckets/2); within a half,
  // offsets < max_exact (= half/2) are exact, larger ones log-spaced up to max_distance, clamped.
  static torch::Tensor Bucket(const torch::Tensor& rel_pos, int64_t num_buckets,
                              int64_t max_distance, bool bidirectional);

  torch::nn::Embedding embedding{nullptr};  // [num_buckets, num_heads]

 private:
  int64_t num_buckets_, max_distance_;
  bool bidirectional_;
};
TORCH_MODULE(T5RelativeEmbedding);

// Multi-head attention without biases and without 1/sqrt(head_dim) scaling.
class T5AttentionImpl : public torch::nn::Module {
 public:
  T5AttentionImpl(const T5Config& config, const DeviceOptions& options);
  // x: [B, L, dim] fp32; key_mask: [B, L] (0 = padding) or undefined; pos_bias: [1|B, H, L, L] fp32
  // or undefined. -> [B, L, dim] fp32.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_mask,
                        const torch::Tensor& pos_bias);

  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};

 private:
  int64_t num_heads_, head_dim_;
};
TORCH_MODULE(T5Attention);

// Gated-GELU feed-forward: fc2(fc1(x) * gelu_tanh(gate[0](x))).
class T5FeedForwardImpl : public torch::nn::Module {
 public:
  T5FeedForwardImpl(const T5Config& config, const DeviceOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // [B, L, dim] fp32 -> [B, L, dim] fp32

  torch::nn::ModuleList gate{nullptr};  // gate[0]: Linear(dim, dim_ffn); named like nn.Sequential
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  torch::nn::Linear gate0_{nullptr};  // == gate[0]
};
TORCH_MODULE(T5FeedForward);

// One encoder block (official T5SelfAttention): pre-norm attention and pre-norm FFN, residuals.
class T5BlockImpl : public torch::nn::Module {
 public:
  T5BlockImpl(const T5Config& config, const DeviceOptions& options);
  // pos_bias: the shared table's bias when config.shared_pos, else ignored (own table).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_mask,
                        const torch::Tensor& pos_bias);

  T5LayerNorm norm1{nullptr}, norm2{nullptr};
  T5Attention attn{nullptr};
  T5FeedForward ffn{nullptr};
  T5RelativeEmbedding pos_embedding{nullptr};  // null when shared_pos
};
TORCH_MODULE(T5Block);

class T5EncoderImpl : public torch::nn::Module {
 public:
  // Parameters are initialised like the official init_weights (normal with fan-based std), so an
  // unloaded encoder behaves like a plausible random one. Prefer CreateT5Encoder (validates).
  T5EncoderImpl(const T5Config& config, const DeviceOptions& options);

  // The official forward: ids [B, L] int64, mask [B, L] int64/bool (1 = token, 0 = padding; may be
  // undefined = no padding) -> [B, L, dim] fp32. Padding keys are masked out of every query's
  // softmax; rows at padded query positions are still computed (and are not zero).
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask = {});

  // Checked, autograd-free forward that returns what Wan feeds the DiT: the official
  // T5EncoderModel keeps context[:seq_len] and the DiT zero-pads it, so rows where mask == 0 are
  // zeroed here. INVALID_ARGUMENT for bad shapes/dtypes or ids outside [0, vocab).
  absl::StatusOr<torch::Tensor> Encode(const torch::Tensor& ids, const torch::Tensor& mask);

  const T5Config& config() const { return config_; }
  const DeviceOptions& options() const { return options_; }

  torch::nn::Embedding token_embedding{nullptr};
  T5RelativeEmbedding pos_embedding{nullptr};  // only when shared_pos
  torch::nn::ModuleList blocks{nullptr};
  T5LayerNorm norm{nullptr};

 private:
  T5Config config_;
  DeviceOptions options_;
};
TORCH_MODULE(T5Encoder);

// Validates the config and options (dtype fp32/bf16/fp16), builds the encoder on options.device.
absl::StatusOr<T5Encoder> CreateT5Encoder(const T5Config& config,
                                          const DeviceOptions& options = {});

// Loads weights named the official Wan way or the Hugging Face way (detected, see t5_key_map.h),
// converting dtype/device to the encoder's. Strict: INVALID_ARGUMENT lists missing, unexpected and
// mis-shaped names. On error the encoder may be partly written: discard it.
absl::Status LoadT5Weights(T5EncoderImpl& encoder, const io::TensorMap& tensors);

}  // namespace linvideo::core::wan
