#include "core/models/wan/vae_key_map.h"

#include <array>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status.h"
#include "core/io/state_dict.h"

namespace linvideo::core::wan {
namespace {

using Pair = std::pair<const char*, const char*>;  // (official leaf, diffusers leaf)

constexpr std::array<Pair, 2> kConvLeaves = {{{"weight", "weight"}, {"bias", "bias"}}};
constexpr std::array<Pair, 1> kNormLeaves = {{{"gamma", "gamma"}}};
constexpr std::array<Pair, 8> kResidualLeaves = {{
    {"residual.0.gamma", "norm1.gamma"},
    {"residual.2.weight", "conv1.weight"},
    {"residual.2.bias", "conv1.bias"},
    {"residual.3.gamma", "norm2.gamma"},
    {"residual.6.weight", "conv2.weight"},
    {"residual.6.bias", "conv2.bias"},
    {"shortcut.weight", "conv_shortcut.weight"},
    {"shortcut.bias", "conv_shortcut.bias"},
}};
constexpr std::array<Pair, 5> kAttentionLeaves = {{
    {"norm.gamma", "norm.gamma"},
    {"to_qkv.weight", "to_qkv.weight"},
    {"to_qkv.bias", "to_qkv.bias"},
    {"proj.weight", "proj.weight"},
    {"proj.bias", "proj.bias"},
}};
constexpr std::array<Pair, 4> kResampleLeaves = {{
    {"resample.1.weight", "resample.1.weight"},
    {"resample.1.bias", "resample.1.bias"},
    {"time_conv.weight", "time_conv.weight"},
    {"time_conv.bias", "time_conv.bias"},
}};

template <size_t N>
std::optional<std::string> MapLeaf(const std::array<Pair, N>& pairs, const std::string& leaf,
                                   bool to_diffusers) {
  for (const Pair& p : pairs) {
    if (leaf == (to_diffusers ? p.first : p.second)) return to_diffusers ? p.second : p.first;
  }
  return std::nullopt;
}

// Module prefixes only diffusers uses.
constexpr std::array<const char*, 10> kDiffusersPrefixes = {
    "quant_conv.",          "post_quant_conv.",   "encoder.conv_in.",   "decoder.conv_in.",
    "encoder.down_blocks.", "decoder.up_blocks.", "encoder.mid_block.", "decoder.mid_block.",
    "encoder.norm_out.",    "decoder.conv_out."};

}  // namespace

VaeKeyMap::VaeKeyMap(const VaeConfig& c) {
  entries_.push_back({"conv1.", "quant_conv.", Leaves::kConv});
  entries_.push_back({"conv2.", "post_quant_conv.", Leaves::kConv});
  for (const std::string side : {"encoder.", "decoder."}) {
    entries_.push_back({side + "conv1.", side + "conv_in.", Leaves::kConv});
    entries_.push_back({side + "middle.0.", side + "mid_block.resnets.0.", Leaves::kResidual});
    entries_.push_back({side + "middle.1.", side + "mid_block.attentions.0.", Leaves::kAttention});
    entries_.push_back({side + "middle.2.", side + "mid_block.resnets.1.", Leaves::kResidual});
    entries_.push_back({side + "head.0.", side + "norm_out.", Leaves::kNorm});
    entries_.push_back({side + "head.2.", side + "conv_out.", Leaves::kConv});
  }
  const int64_t stages = static_cast<int64_t>(c.dim_mult.size());
  // Encoder: the same flat list in both layouts (down_blocks.k == downsamples.k).
  int64_t k = 0;
  for (int64_t i = 0; i < stages; ++i) {
    for (int64_t j = 0; j < c.num_res_blocks; ++j, ++k) {
      const std::string idx = std::to_string(k) + ".";
      entries_.push_back(
          {"encoder.downsamples." + idx, "encoder.down_blocks." + idx, Leaves::kResidual});
    }
    if (i + 1 != stages) {
      const std::string idx = std::to_string(k++) + ".";
      entries_.push_back(
          {"encoder.downsamples." + idx, "encoder.down_blocks." + idx, Leaves::kResample});
    }
  }
  // Decoder: flat `upsamples` vs per-stage up_blocks.
  k = 0;
  for (int64_t i = 0; i < stages; ++i) {
    const std::string block = absl::StrCat("decoder.up_blocks.", i, ".");
    for (int64_t j = 0; j < c.num_res_blocks + 1; ++j, ++k) {
      entries_.push_back({absl::StrCat("decoder.upsamples.", k, "."),
                          absl::StrCat(block, "resnets.", j, "."), Leaves::kResidual});
    }
    if (i + 1 != stages) {
      entries_.push_back({absl::StrCat("decoder.upsamples.", k++, "."),
                          absl::StrCat(block, "upsamplers.0."), Leaves::kResample});
    }
  }
}

std::optional<std::string> VaeKeyMap::Map(const std::string& name, bool to_diffusers) const {
  for (const Entry& e : entries_) {
    const std::string& from = to_diffusers ? e.official_prefix : e.diffusers_prefix;
    if (!absl::StartsWith(name, from)) continue;
    const std::string leaf = name.substr(from.size());
    std::optional<std::string> mapped;
    switch (e.leaves) {
      case Leaves::kConv:
        mapped = MapLeaf(kConvLeaves, leaf, to_diffusers);
        break;
      case Leaves::kNorm:
        mapped = MapLeaf(kNormLeaves, leaf, to_diffusers);
        break;
      case Leaves::kResidual:
        mapped = MapLeaf(kResidualLeaves, leaf, to_diffusers);
        break;
      case Leaves::kAttention:
        mapped = MapLeaf(kAttentionLeaves, leaf, to_diffusers);
        break;
      case Leaves::kResample:
        mapped = MapLeaf(kResampleLeaves, leaf, to_diffusers);
        break;
    }
    if (!mapped.has_value()) return std::nullopt;
    return (to_diffusers ? e.diffusers_prefix : e.official_prefix) + *mapped;
  }
  return std::nullopt;
}

std::optional<std::string> VaeKeyMap::ToDiffusers(const std::string& official) const {
  return Map(official, /*to_diffusers=*/true);
}

std::optional<std::string> VaeKeyMap::ToOfficial(const std::string& diffusers) const {
  return Map(diffusers, /*to_diffusers=*/false);
}

VaeKeyFormat DetectVaeKeyFormat(const io::TensorMap& tensors) {
  for (const auto& [name, t] : tensors) {
    for (const char* prefix : kDiffusersPrefixes) {
      if (absl::StartsWith(name, prefix)) return VaeKeyFormat::kDiffusers;
    }
  }
  return VaeKeyFormat::kOfficial;
}

absl::StatusOr<io::TensorMap> ToOfficialVaeStateDict(const io::TensorMap& tensors,
                                                     const VaeConfig& config) {
  if (DetectVaeKeyFormat(tensors) == VaeKeyFormat::kOfficial) return tensors;
  const VaeKeyMap map(config);
  return io::RenameKeys(tensors, [&](const std::string& name) -> std::optional<std::string> {
    return map.ToOfficial(name).value_or(name);
  });
}

absl::StatusOr<io::TensorMap> ToDiffusersVaeStateDict(const io::TensorMap& official,
                                                      const VaeConfig& config) {
  const VaeKeyMap map(config);
  std::vector<std::string> unmapped;
  for (const auto& [name, t] : official) {
    if (!map.ToDiffusers(name).has_value()) unmapped.push_back(name);
  }
  if (!unmapped.empty()) {
    if (unmapped.size() > 10) unmapped.resize(10);
    return absl::InvalidArgumentError(
        absl::StrCat("VAE state dict: names with no diffusers equivalent for this config: ",
                     absl::StrJoin(unmapped, ", ")));
  }
  return io::RenameKeys(official, [&](const std::string& name) { return map.ToDiffusers(name); });
}

absl::Status LoadWanVaeWeights(WanVae& vae, const io::TensorMap& tensors) {
  LV_ASSIGN_OR_RETURN(io::TensorMap official, ToOfficialVaeStateDict(tensors, vae->config()));
  return Annotate(io::LoadStateDict(*vae, official), "loading Wan VAE weights");
}

}  // namespace linvideo::core::wan
