#pragma once
// Configuration of the Wan 2.1 diffusion transformer (WanModel, text-to-video).
//
// Reads and writes both config.json layouts found in the wild:
//  * the official Wan-AI layout (WanModel: dim, ffn_dim, num_heads, in_dim, ... — fields the file
//    omits take the official WanModel defaults), and
//  * the diffusers layout (WanTransformer3DModel: num_attention_heads, attention_head_dim,
//    in_channels, ... — omitted fields take the diffusers defaults).
// linvideo adds one optional key to either layout: "attention_kinds", a list with one attention
// kind name per layer ("softmax" | "linear" | "hybrid"); absent means every layer is softmax.
//
// A WanConfig is a plain value: copy it freely; it is immutable once validated by its user.

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/attention/attention.h"

namespace linvideo::core::wan {

// Which config.json layout a file uses / should be written in.
enum class DitConfigFormat { kOriginal, kDiffusers };

struct WanConfig {
  // Defaults are Wan2.1-T2V-1.3B.
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t freq_dim = 256;   // sinusoidal time embedding width
  int64_t text_dim = 4096;  // umT5 d_model
  int64_t text_len = 512;   // context is zero-padded to this many tokens
  int64_t in_dim = 16;
  int64_t out_dim = 16;
  int64_t num_heads = 12;
  int64_t num_layers = 30;
  static constexpr int64_t kMaxLayers = 1024;     // Wan 2.1 14B has 40
  std::array<int64_t, 3> patch_size = {1, 2, 2};  // (t, h, w)
  double eps = 1e-6;
  bool qk_norm = true;              // RMSNorm over the whole dim on q and k
  bool cross_attn_norm = true;      // affine LayerNorm (norm3) before cross-attention
  int64_t rope_max_seq_len = 1024;  // positions per axis in the RoPE tables
  // One entry per layer; Validate() requires num_layers entries.
  std::vector<attention::AttentionKind> attention_kinds =
      std::vector<attention::AttentionKind>(30, attention::AttentionKind::kSoftmax);

  int64_t head_dim() const { return num_heads > 0 ? dim / num_heads : 0; }
  // Product of patch_size (the head outputs patch_volume() * out_dim values per token).
  int64_t patch_volume() const { return patch_size[0] * patch_size[1] * patch_size[2]; }
  // Sets num_layers and resizes attention_kinds (new layers get `kind`).
  void SetNumLayers(int64_t layers,
                    attention::AttentionKind kind = attention::AttentionKind::kSoftmax);

  // INVALID_ARGUMENT naming the first bad field and what is allowed.
  absl::Status Validate() const;

  // Detects the layout, applies that layout's defaults, validates. Unsupported variants (i2v,
  // flf2v, vace, windowed attention, image cross-attention) are UNIMPLEMENTED.
  static absl::StatusOr<WanConfig> FromJson(const nlohmann::json& json);
  // Writes `format`'s field names (plus "attention_kinds" when some layer is not softmax, and
  // "text_len" in the diffusers layout when it is not 512).
  nlohmann::json ToJson(DitConfigFormat format = DitConfigFormat::kOriginal) const;
};

// kDiffusers when the object has diffusers-only keys (num_attention_heads, attention_head_dim,
// in_channels, or _class_name WanTransformer3DModel); otherwise kOriginal.
DitConfigFormat DetectDitConfigFormat(const nlohmann::json& json);

// Named configurations:
//   "wan2.1-t2v-1.3b": dim 1536, ffn 8960, 12 heads x 128, 30 layers.
//   "wan2.1-t2v-14b":  dim 5120, ffn 13824, 40 heads x 128, 40 layers.
//   "tiny": for tests and the random-weights default model: dim 128, 2 heads x 64 (RoPE split
//           24/20/20 real dims, so every axis rotates), ffn 256, 2 layers, freq_dim 32,
//           text_dim 64, text_len 32; 16 in/out channels and patch (1,2,2) as the real models.
// NOT_FOUND lists the names.
absl::StatusOr<WanConfig> NamedDitConfig(const std::string& name);
std::vector<std::string> NamedDitConfigNames();

}  // namespace linvideo::core::wan
