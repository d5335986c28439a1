#pragma once
// Configuration of the umT5 / T5 text encoder used by Wan 2.1 (encoder only, gated-GELU FFN, T5
// RMS norm, relative position bias, no biases, no 1/sqrt(d) attention scaling).
//
// Two JSON layouts are read: the Hugging Face T5/UMT5 config.json (d_model, d_kv, d_ff, ...) and a
// Wan-style one (dim, dim_attn, dim_ffn, ...), told apart by their keys. ToJson() writes the
// Hugging Face layout. A plain value type: copy freely, thread-compatible.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::wan {

struct T5Config {
  int64_t vocab = 256384;   // token embedding rows
  int64_t dim = 4096;       // d_model
  int64_t dim_attn = 4096;  // num_heads * head_dim (HF: num_heads * d_kv)
  int64_t dim_ffn = 10240;  // d_ff
  int64_t num_heads = 64;
  int64_t num_layers = 24;
  int64_t num_buckets = 32;    // relative position buckets (half per direction)
  int64_t max_distance = 128;  // distance at which the log buckets saturate
  double eps = 1e-6;           // T5 RMS norm epsilon
  // false (umT5): every block has its own relative position table; true (T5/mT5): one table shared
  // by all blocks (official name `pos_embedding.embedding`, HF stores it in block 0).
  bool shared_pos = false;

  int64_t head_dim() const { return num_heads > 0 ? dim_attn / num_heads : 0; }

  // INVALID_ARGUMENT naming the first bad field and the allowed range.
  absl::Status Validate() const;

  // "umt5-xxl" (Wan 2.1's text encoder) or "tiny" (tests).
  static absl::StatusOr<T5Config> Named(const std::string& name);
  // Detects the layout: "d_model" => Hugging Face, "dim" => Wan style. Validates the result.
  static absl::StatusOr<T5Config> FromJson(const nlohmann::json& json);
  // Hugging Face layout (model_type "umt5" when !shared_pos, else "t5").
  nlohmann::json ToJson() const;
};

bool operator==(const T5Config& a, const T5Config& b);
inline bool operator!=(const T5Config& a, const T5Config& b) { return !(a == b); }

}  // namespace linvideo::core::wan
