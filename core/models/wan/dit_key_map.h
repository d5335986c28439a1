#pragma once
// Parameter names of the Wan DiT: the official (original) names used by WanModel and Wan-AI
// checkpoints, and the diffusers WanTransformer3DModel names, converted in both directions.
//
//   original                          diffusers
//   patch_embedding.*                 patch_embedding.*
//   text_embedding.0/.2               condition_embedder.text_embedder.linear_1/linear_2
//   time_embedding.0/.2               condition_embedder.time_embedder.linear_1/linear_2
//   time_projection.1                 condition_embedder.time_proj
//   blocks.N.self_attn.q/k/v/o        blocks.N.attn1.to_q/to_k/to_v/to_out.0
//   blocks.N.self_attn.norm_q/norm_k  blocks.N.attn1.norm_q/norm_k
//   blocks.N.self_attn.attn_core.*    blocks.N.attn1.attn_core.*   (linvideo attention kinds)
//   blocks.N.cross_attn.*             blocks.N.attn2.* (same sub-names)
//   blocks.N.norm3 (cross-attn norm)  blocks.N.norm2   (diffusers swaps norm2/norm3)
//   blocks.N.ffn.0/.2                 blocks.N.ffn.net.0.proj/ffn.net.2
//   blocks.N.modulation               blocks.N.scale_shift_table
//   head.head                         proj_out
//   head.modulation                   scale_shift_table
// Original checkpoints saved with a "model.diffusion_model." prefix (ComfyUI) are accepted.
// Names outside these tables (e.g. image-to-video layers) are INVALID_ARGUMENT, listed.
//
// Pure functions; thread-safe. Tensors are not copied.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace linvideo::core::wan {

enum class DitKeyLayout { kOriginal, kDiffusers };

// Detects the naming of a DiT state dict from characteristic keys; INVALID_ARGUMENT when the map
// has neither (or both) kinds of names.
absl::StatusOr<DitKeyLayout> DetectDitKeyLayout(const io::TensorMap& tensors);

// One name; INVALID_ARGUMENT for a name that is not a DiT parameter of that layout.
absl::StatusOr<std::string> DitKeyToDiffusers(const std::string& original_name);
absl::StatusOr<std::string> DitKeyToOriginal(const std::string& diffusers_name);

// Whole state dicts, layout auto-detected (a map already in the target layout is returned as is,
// minus a "model.diffusion_model." prefix). Every key must map; errors list the ones that do not.
// N of an original-name DiT tensor "blocks.N....", else -1.
int64_t DitBlockIndex(const std::string& original_name);

absl::StatusOr<io::TensorMap> DitToOriginalNames(const io::TensorMap& tensors);
absl::StatusOr<io::TensorMap> DitToDiffusersNames(const io::TensorMap& tensors);

}  // namespace linvideo::core::wan
