#pragma once
// Configuration of the Wan 2.1 video VAE (3D causal VAE, stride 4x8x8 in time x height x width).
//
// Two JSON layouts are read: diffusers' AutoencoderKLWan config.json ("base_dim", "latents_mean",
// ...) and a minimal Wan-style one ("dim", "mean"/"std", ...); missing fields keep the Wan 2.1
// defaults. ToJson() writes the diffusers layout. A plain value type: copy freely,
// thread-compatible.
//
// z_dim is the latent channel count the DiT sees (in/out channels 16 for Wan 2.1); keep it 16
// unless the DiT is configured to match. latents_mean/latents_std are the per-channel statistics
// used to normalise latents for the DiT: normalised = (mu - mean) / std.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::wan {

struct VaeConfig {
  int64_t base_dim = 96;  // channels of the first/last (full-resolution) stage
  int64_t z_dim = 16;     // latent channels (the encoder outputs 2·z_dim)
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};  // channel multiplier per stage
  int64_t num_res_blocks = 2;                    // residual blocks per encoder stage (decoder: +1)
  std::vector<double> attn_scales;               // must be empty (kept for the JSON layouts)
  // One per stage transition (dim_mult.size() - 1); true halves time as well as space there. The
  // decoder uses the reverse.
  std::vector<bool> temperal_downsample = {false, true, true};
  double dropout = 0.0;  // training only; never applied by this implementation (inference)
  std::vector<double> latents_mean;  // z_dim values (Wan 2.1 constants by default)
  std::vector<double> latents_std;   // z_dim values, > 0

  VaeConfig();

  // 2^(number of temporal downsamplings): 4 for Wan 2.1. Video frames must be 1 + k·this.
  int64_t temporal_stride() const;
  // 2^(number of stages - 1): 8 for Wan 2.1. Video height/width must be multiples of this.
  int64_t spatial_stride() const;

  // INVALID_ARGUMENT naming the first bad field and the allowed values.
  absl::Status Validate() const;

  // "wan2.1" (the released Wan 2.1 VAE) or "tiny" (tests: base_dim 8, one residual block per
  // stage, z_dim 16 so latents stay DiT compatible).
  static absl::StatusOr<VaeConfig> Named(const std::string& name);
  // Diffusers layout if "base_dim" or "_class_name" is present, else Wan style ("dim"). Unknown
  // keys are ignored; keys selecting architectures this implementation lacks (is_residual: true, a
  // different decoder_base_dim, patch_size, in/out_channels != 3) are INVALID_ARGUMENT. Validates.
  static absl::StatusOr<VaeConfig> FromJson(const nlohmann::json& json);
  // Diffusers layout ("_class_name": "AutoencoderKLWan").
  nlohmann::json ToJson() const;
};

bool operator==(const VaeConfig& a, const VaeConfig& b);
inline bool operator!=(const VaeConfig& a, const VaeConfig& b) { return !(a == b); }

}  // namespace linvideo::core::wan
