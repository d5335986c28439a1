#include "core/models/wan/dit_key_map.h"

#include <cctype>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status.h"
#include "core/io/state_dict.h"

namespace linvideo::core::wan {
namespace {

constexpr char kComfyPrefix[] = "model.diffusion_model.";

struct NameRule {
  const char* original;
  const char* diffusers;
};

// A rule ending in '.' is a module prefix followed by one parameter name ("weight", "bias");
// "attn_core." prefixes may be followed by any sub-path (kind-specific parameters); other rules
// are whole names. Facts from diffusers' convert_wan_transformer_to_diffusers and
// transformer_wan.py (norm2/norm3 are swapped: diffusers' norm2 is the affine cross-attn norm).
constexpr NameRule kTopRules[] = {
    {"patch_embedding.", "patch_embedding."},
    {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
    {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
    {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
    {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
    {"time_projection.1.", "condition_embedder.time_proj."},
    {"head.head.", "proj_out."},
    {"head.modulation", "scale_shift_table"},
};

constexpr NameRule kBlockRules[] = {
    {"self_attn.q.", "attn1.to_q."},
    {"self_attn.k.", "attn1.to_k."},
    {"self_attn.v.", "attn1.to_v."},
    {"self_attn.o.", "attn1.to_out.0."},
    {"self_attn.norm_q.", "attn1.norm_q."},
    {"self_attn.norm_k.", "attn1.norm_k."},
    {"self_attn.attn_core.", "attn1.attn_core."},
    {"cross_attn.q.", "attn2.to_q."},
    {"cross_attn.k.", "attn2.to_k."},
    {"cross_attn.v.", "attn2.to_v."},
    {"cross_attn.o.", "attn2.to_out.0."},
    {"cross_attn.norm_q.", "attn2.norm_q."},
    {"cross_attn.norm_k.", "attn2.norm_k."},
    {"norm3.", "norm2."},
    {"ffn.0.", "ffn.net.0.proj."},
    {"ffn.2.", "ffn.net.2."},
    {"modulation", "scale_shift_table"},
};

std::optional<std::string> ApplyRules(const std::string& name, const NameRule* begin,
                                      const NameRule* end, bool to_diffusers) {
  for (const NameRule* rule = begin; rule != end; ++rule) {
    const std::string from = to_diffusers ? rule->original : rule->diffusers;
    const std::string to = to_diffusers ? rule->diffusers : rule->original;
    if (from.back() != '.') {
      if (name == from) return to;
      continue;
    }
    if (!absl::StartsWith(name, from) || name.size() == from.size()) continue;
    const std::string rest = name.substr(from.size());
    const bool any_sub_path = absl::EndsWith(from, "attn_core.");
    if (!any_sub_path && rest.find('.') != std::string::npos) continue;
    return to + rest;
  }
  return std::nullopt;
}

std::optional<std::string> ConvertName(const std::string& name, bool to_diffusers) {
  static constexpr char kBlocks[] = "blocks.";
  if (absl::StartsWith(name, kBlocks)) {
    size_t pos = sizeof(kBlocks) - 1;
    const size_t digits_begin = pos;
    while (pos < name.size() && std::isdigit(static_cast<unsigned char>(name[pos]))) ++pos;
    if (pos == digits_begin || pos >= name.size() || name[pos] != '.') return std::nullopt;
    auto rest = ApplyRules(name.substr(pos + 1), std::begin(kBlockRules), std::end(kBlockRules),
                           to_diffusers);
    if (!rest) return std::nullopt;
    return name.substr(0, pos + 1) + *rest;
  }
  return ApplyRules(name, std::begin(kTopRules), std::end(kTopRules), to_diffusers);
}

std::string StripComfyPrefix(const std::string& name) {
  return absl::StartsWith(name, kComfyPrefix) ? name.substr(sizeof(kComfyPrefix) - 1) : name;
}

// Renames every key (after stripping the ComfyUI prefix) with `convert`, or lists the misfits.
absl::StatusOr<io::TensorMap> RenameAll(const io::TensorMap& tensors, bool to_diffusers,
                                        bool identity) {
  std::vector<std::string> unknown;
  auto result = io::RenameKeys(tensors, [&](const std::string& key) -> std::optional<std::string> {
    const std::string name = StripComfyPrefix(key);
    if (identity) {
      // Already in the target layout: still check each name belongs to it.
      if (ConvertName(name, !to_diffusers)) return name;
    } else if (auto converted = ConvertName(name, to_diffusers)) {
      return converted;
    }
    unknown.push_back(key);
    return std::nullopt;
  });
  if (!result.ok()) return result.status();
  if (!unknown.empty()) {
    const size_t shown = std::min<size_t>(unknown.size(), 8);
    return absl::InvalidArgumentError(absl::StrCat(
        unknown.size(), " DiT weight name(s) are not ",
        (identity == to_diffusers) ? "diffusers" : "original", " WanModel (t2v) parameters: ",
        absl::StrJoin(unknown.begin(), unknown.begin() + shown, ", "),
        unknown.size() > shown ? ", ..." : ""));
  }
  return result;
}

}  // namespace

absl::StatusOr<DitKeyLayout> DetectDitKeyLayout(const io::TensorMap& tensors) {
  bool original = false, diffusers = false;
  for (const auto& [key, tensor] : tensors) {
    const std::string name = StripComfyPrefix(key);
    original = original || absl::StartsWith(name, "time_embedding.") ||
               absl::StartsWith(name, "head.head.") || absl::StrContains(name, ".self_attn.");
    diffusers = diffusers || absl::StartsWith(name, "condition_embedder.") ||
                absl::StartsWith(name, "proj_out.") || absl::StrContains(name, ".attn1.");
  }
  if (original == diffusers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot tell the DiT weight naming (", tensors.size(), " tensors): expected either ",
        "original WanModel names (time_embedding.*, blocks.N.self_attn.*) or diffusers names "
        "(condition_embedder.*, blocks.N.attn1.*)",
        original ? ", found both" : ", found neither"));
  }
  return original ? DitKeyLayout::kOriginal : DitKeyLayout::kDiffusers;
}

absl::StatusOr<std::string> DitKeyToDiffusers(const std::string& original_name) {
  if (auto name = ConvertName(StripComfyPrefix(original_name), true)) return *name;
  return absl::InvalidArgumentError(
      absl::StrCat("'", original_name, "' is not an original WanModel (t2v) parameter name"));
}

absl::StatusOr<std::string> DitKeyToOriginal(const std::string& diffusers_name) {
  if (auto name = ConvertName(diffusers_name, false)) return *name;
  return absl::InvalidArgumentError(absl::StrCat(
      "'", diffusers_name, "' is not a diffusers WanTransformer3DModel (t2v) parameter name"));
}

absl::StatusOr<io::TensorMap> DitToOriginalNames(const io::TensorMap& tensors) {
  LV_ASSIGN_OR_RETURN(DitKeyLayout layout, DetectDitKeyLayout(tensors));
  return RenameAll(tensors, /*to_diffusers=*/false, layout == DitKeyLayout::kOriginal);
}

absl::StatusOr<io::TensorMap> DitToDiffusersNames(const io::TensorMap& tensors) {
  LV_ASSIGN_OR_RETURN(DitKeyLayout layout, DetectDitKeyLayout(tensors));
  return RenameAll(tensors, /*to_diffusers=*/true, layout == DitKeyLayout::kDiffusers);
}

int64_t DitBlockIndex(const std::string& name) {
  constexpr absl::string_view kPrefix = "blocks.";
  if (!absl::StartsWith(name, kPrefix)) return -1;
  const size_t end = name.find('.', kPrefix.size());
  int64_t index = -1;
  if (!absl::SimpleAtoi(absl::string_view(name).substr(kPrefix.size(), end - kPrefix.size()),
                        &index)) {
    return -1;
  }
  return index;
}

}  // namespace linvideo::core::wan
