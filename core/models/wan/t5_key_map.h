#pragma once
// Parameter-name conversion between Hugging Face (UMT5EncoderModel / T5EncoderModel, as in the
// diffusers Wan text_encoder/ folder) and the official Wan 2.1 names that T5Encoder uses:
//
//   shared.weight | encoder.embed_tokens.weight              <-> token_embedding.weight
//   encoder.block.N.layer.0.layer_norm.weight                <-> blocks.N.norm1.weight
//   encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight   <-> blocks.N.attn.{q,k,v,o}.weight
//   encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight
//                                <-> blocks.N.pos_embedding.embedding.weight   (umT5: every block)
//                                <-> pos_embedding.embedding.weight            (T5: block 0 only)
//   encoder.block.N.layer.1.layer_norm.weight                <-> blocks.N.norm2.weight
//   encoder.block.N.layer.1.DenseReluDense.wi_0.weight       <-> blocks.N.ffn.gate.0.weight
//   encoder.block.N.layer.1.DenseReluDense.wi_1.weight       <-> blocks.N.ffn.fc1.weight
//   encoder.block.N.layer.1.DenseReluDense.wo.weight         <-> blocks.N.ffn.fc2.weight
//   encoder.final_layer_norm.weight                          <-> norm.weight
//
// wi_0 is the GELU branch: HF T5DenseGatedActDense computes act(wi_0(x)) * wi_1(x), the official
// T5FeedForward fc1(x) * gate(x) with gate = Sequential(Linear, GELU).
// Pure functions; thread-safe.

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"
#include "core/io/state_dict.h"

namespace linvideo::core::wan {

enum class T5KeyLayout { kWan, kHuggingFace };

// kHuggingFace if any key starts with "encoder." or is "shared.weight"; kWan if any key starts with
// "blocks." or is "token_embedding.weight"; INVALID_ARGUMENT otherwise (lists a few keys).
absl::StatusOr<T5KeyLayout> DetectT5KeyLayout(const io::TensorMap& tensors);

// One HF name -> official name. Names outside the table come back unchanged (so a strict load
// reports them as unexpected). `shared_pos`: map block 0's relative_attention_bias to the shared
// table (T5/mT5) instead of blocks.0.pos_embedding (umT5).
std::string HfToWanT5Key(const std::string& name, bool shared_pos = false);
// One official name -> HF name (token_embedding -> shared.weight); others unchanged.
std::string WanToHfT5Key(const std::string& name, bool shared_pos = false);

// Whole state dicts. HF -> Wan drops decoder/lm_head tensors (a full T5 checkpoint) and
// encoder.embed_tokens.weight when shared.weight is also present (they are tied).
absl::StatusOr<io::TensorMap> HfToWanT5(const io::TensorMap& tensors, bool shared_pos = false);
absl::StatusOr<io::TensorMap> WanToHfT5(const io::TensorMap& tensors, bool shared_pos = false);
// Detects the layout and returns official names (Wan input is passed through).
absl::StatusOr<io::TensorMap> ToWanT5(const io::TensorMap& tensors, bool shared_pos = false);

}  // namespace linvideo::core::wan
