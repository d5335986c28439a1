#pragma once
// Parameter names of the Wan 2.1 VAE: official (wan/modules/vae.py, Wan2.1_VAE.pth) <-> diffusers
// (AutoencoderKLWan). The model uses the official names; diffusers checkpoints are renamed on load.
//
// The two layouts differ in naming (conv1 -> conv_in / quant_conv, residual.0 -> norm1, middle.N ->
// mid_block.{resnets,attentions}.M, head.N -> norm_out / conv_out) and, in the decoder, in
// grouping: the official flat `upsamples` list (per stage num_res_blocks+1 residual blocks, then a
// resampler) becomes `up_blocks.<stage>.resnets.<j>` and `up_blocks.<stage>.upsamplers.0`. Indices
// are derived from the VaeConfig, so any valid config maps. Immutable after construction;
// thread-safe.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/safetensors.h"
#include "core/models/wan/vae.h"
#include "core/models/wan/vae_config.h"

namespace linvideo::core::wan {

enum class VaeKeyFormat { kOfficial, kDiffusers };

class VaeKeyMap {
 public:
  explicit VaeKeyMap(const VaeConfig& config);

  // nullopt when `name` is not a parameter name of that layout for this config.
  std::optional<std::string> ToDiffusers(const std::string& official) const;
  std::optional<std::string> ToOfficial(const std::string& diffusers) const;

 private:
  enum class Leaves { kConv, kNorm, kResidual, kAttention, kResample };
  struct Entry {
    std::string official_prefix;   // ends with '.'
    std::string diffusers_prefix;  // ends with '.'
    Leaves leaves;
  };
  std::optional<std::string> Map(const std::string& name, bool to_diffusers) const;

  std::vector<Entry> entries_;
};

// kDiffusers when any name uses a diffusers-only module (conv_in, quant_conv, down_blocks,
// up_blocks, mid_block, norm_out, conv_out), else kOfficial.
VaeKeyFormat DetectVaeKeyFormat(const io::TensorMap& tensors);

// Returns the tensors under official names (renaming a diffusers state dict; an official one is
// returned as is). Names that do not map are kept unchanged, so a strict load reports them.
absl::StatusOr<io::TensorMap> ToOfficialVaeStateDict(const io::TensorMap& tensors,
                                                     const VaeConfig& config);
// Official -> diffusers names; INVALID_ARGUMENT lists names that do not map.
absl::StatusOr<io::TensorMap> ToDiffusersVaeStateDict(const io::TensorMap& official,
                                                      const VaeConfig& config);

// Detects the layout, renames to official names and loads strictly (every parameter present, none
// unexpected, shapes equal). Not concurrent with calls on `vae`.
absl::Status LoadWanVaeWeights(WanVae& vae, const io::TensorMap& tensors);

}  // namespace linvideo::core::wan
