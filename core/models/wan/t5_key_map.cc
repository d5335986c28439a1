#include "core/models/wan/t5_key_map.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace linvideo::core::wan {
namespace {

// Suffix pairs inside one block: HF "layer.X.<suffix>" <-> official "<suffix>".
struct BlockPair {
  const char* hf;
  const char* wan;
};
constexpr BlockPair kBlockPairs[] = {
    {"layer.0.layer_norm.weight", "norm1.weight"},
    {"layer.0.SelfAttention.q.weight", "attn.q.weight"},
    {"layer.0.SelfAttention.k.weight", "attn.k.weight"},
    {"layer.0.SelfAttention.v.weight", "attn.v.weight"},
    {"layer.0.SelfAttention.o.weight", "attn.o.weight"},
    {"layer.0.SelfAttention.relative_attention_bias.weight", "pos_embedding.embedding.weight"},
    {"layer.1.layer_norm.weight", "norm2.weight"},
    {"layer.1.DenseReluDense.wi_0.weight", "ffn.gate.0.weight"},
    {"layer.1.DenseReluDense.wi_1.weight", "ffn.fc1.weight"},
    {"layer.1.DenseReluDense.wo.weight", "ffn.fc2.weight"},
};

constexpr char kHfBias[] = "layer.0.SelfAttention.relative_attention_bias.weight";
constexpr char kWanSharedPos[] = "pos_embedding.embedding.weight";

// "<prefix>N.<rest>" -> (N, rest).
bool SplitBlock(const std::string& name, const std::string& prefix, int64_t* index,
                std::string* rest) {
  if (!absl::StartsWith(name, prefix)) return false;
  const std::string tail = name.substr(prefix.size());
  const size_t dot = tail.find('.');
  if (dot == std::string::npos || !absl::SimpleAtoi(tail.substr(0, dot), index)) return false;
  *rest = tail.substr(dot + 1);
  return true;
}

std::string FewKeys(const io::TensorMap& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, _] : tensors) {
    if (names.size() == 5) break;
    names.push_back(name);
  }
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::StatusOr<T5KeyLayout> DetectT5KeyLayout(const io::TensorMap& tensors) {
  bool hf = false, wan = false;
  for (const auto& [name, _] : tensors) {
    if (absl::StartsWith(name, "encoder.") || name == "shared.weight") hf = true;
    if (absl::StartsWith(name, "blocks.") || name == "token_embedding.weight") wan = true;
  }
  if (hf && wan) {
    return absl::InvalidArgumentError(
        "T5 weights mix Hugging Face (encoder.*, shared.weight) and Wan (blocks.*, "
        "token_embedding.weight) names; expected one layout");
  }
  if (hf) return T5KeyLayout::kHuggingFace;
  if (wan) return T5KeyLayout::kWan;
  return absl::InvalidArgumentError(
      absl::StrCat("T5 weights: neither Hugging Face (encoder.block.N..., shared.weight) nor Wan "
                   "(blocks.N..., token_embedding.weight) names; first keys: ",
                   FewKeys(tensors)));
}

std::string HfToWanT5Key(const std::string& name, bool shared_pos) {
  if (name == "shared.weight" || name == "encoder.embed_tokens.weight") {
    return "token_embedding.weight";
  }
  if (name == "encoder.final_layer_norm.weight") return "norm.weight";
  int64_t index = 0;
  std::string rest;
  if (!SplitBlock(name, "encoder.block.", &index, &rest)) return name;
  if (shared_pos && index == 0 && rest == kHfBias) return kWanSharedPos;
  for (const auto& pair : kBlockPairs) {
    if (rest == pair.hf) return absl::StrCat("blocks.", index, ".", pair.wan);
  }
  return name;
}

std::string WanToHfT5Key(const std::string& name, bool shared_pos) {
  if (name == "token_embedding.weight") return "shared.weight";
  if (name == "norm.weight") return "encoder.final_layer_norm.weight";
  if (shared_pos && name == kWanSharedPos) return absl::StrCat("encoder.block.0.", kHfBias);
  int64_t index = 0;
  std::string rest;
  if (!SplitBlock(name, "blocks.", &index, &rest)) return name;
  for (const auto& pair : kBlockPairs) {
    if (rest == pair.wan) return absl::StrCat("encoder.block.", index, ".", pair.hf);
  }
  return name;
}

absl::StatusOr<io::TensorMap> HfToWanT5(const io::TensorMap& tensors, bool shared_pos) {
  const bool has_shared = tensors.count("shared.weight") > 0;
  return io::RenameKeys(tensors, [&](const std::string& name) -> std::optional<std::string> {
    // A full T5 checkpoint (T5ForConditionalGeneration) also carries the decoder and LM head.
    if (absl::StartsWith(name, "decoder.") || name == "lm_head.weight") return std::nullopt;
    if (has_shared && name == "encoder.embed_tokens.weight") return std::nullopt;  // tied copy
    return HfToWanT5Key(name, shared_pos);
  });
}

absl::StatusOr<io::TensorMap> WanToHfT5(const io::TensorMap& tensors, bool shared_pos) {
  return io::RenameKeys(tensors, [&](const std::string& name) -> std::optional<std::string> {
    return WanToHfT5Key(name, shared_pos);
  });
}

absl::StatusOr<io::TensorMap> ToWanT5(const io::TensorMap& tensors, bool shared_pos) {
  absl::StatusOr<T5KeyLayout> layout = DetectT5KeyLayout(tensors);
  if (!layout.ok()) return layout.status();
  if (*layout == T5KeyLayout::kWan) return tensors;
  return HfToWanT5(tensors, shared_pos);
}

}  // namespace linvideo::core::wan
