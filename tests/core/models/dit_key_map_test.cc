#include "core/models/wan/dit_key_map.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/io/state_dict.h"
#include "core/models/wan/dit.h"

namespace linvideo::core::wan {
namespace {

// A model with the 1.3B name set (30 layers, qk_norm, cross_attn_norm) but tiny tensors.
WanModel ModelWith13BNames() {
  WanConfig config = *NamedDitConfig("tiny");
  config.SetNumLayers(NamedDitConfig("wan2.1-t2v-1.3b")->num_layers);
  auto model = CreateWanModel(config);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

std::set<std::string> Keys(const io::TensorMap& map) {
  std::set<std::string> keys;
  for (const auto& [k, v] : map) keys.insert(k);
  return keys;
}

// WanTransformer3DModel's parameter names (diffusers transformer_wan.py), listed independently.
std::set<std::string> DiffusersNames(int layers) {
  std::set<std::string> names = {"scale_shift_table"};
  for (const char* top :
       {"patch_embedding", "condition_embedder.time_embedder.linear_1",
        "condition_embedder.time_embedder.linear_2", "condition_embedder.time_proj",
        "condition_embedder.text_embedder.linear_1", "condition_embedder.text_embedder.linear_2",
        "proj_out"}) {
    names.insert(absl::StrCat(top, ".weight"));
    names.insert(absl::StrCat(top, ".bias"));
  }
  for (int i = 0; i < layers; ++i) {
    const std::string b = absl::StrCat("blocks.", i, ".");
    names.insert(b + "scale_shift_table");
    for (const char* attn : {"attn1", "attn2"}) {
      for (const char* proj : {"to_q", "to_k", "to_v", "to_out.0"}) {
        names.insert(absl::StrCat(b, attn, ".", proj, ".weight"));
        names.insert(absl::StrCat(b, attn, ".", proj, ".bias"));
      }
      names.insert(absl::StrCat(b, attn, ".norm_q.weight"));
      names.insert(absl::StrCat(b, attn, ".norm_k.weight"));
    }
    for (const char* layer : {"norm2", "ffn.net.0.proj", "ffn.net.2"}) {
      names.insert(absl::StrCat(b, layer, ".weight"));
      names.insert(absl::StrCat(b, layer, ".bias"));
    }
  }
  return names;
}

TEST(DitKeyMapTest, RoundTripsThe13BNameSet) {
  WanModel model = ModelWith13BNames();
  const io::TensorMap original = io::StateDict(*model);
  ASSERT_EQ(original.size(), 825u);
  EXPECT_EQ(*DetectDitKeyLayout(original), DitKeyLayout::kOriginal);

  auto diffusers = DitToDiffusersNames(original);
  ASSERT_TRUE(diffusers.ok()) << diffusers.status();
  EXPECT_EQ(Keys(*diffusers), DiffusersNames(30));
  EXPECT_EQ(*DetectDitKeyLayout(*diffusers), DitKeyLayout::kDiffusers);
  // The cross-attention norm (official norm3) is diffusers' norm2; tensors are not copied.
  EXPECT_EQ(diffusers->at("blocks.4.norm2.weight").data_ptr(),
            original.at("blocks.4.norm3.weight").data_ptr());
  EXPECT_EQ(diffusers->at("scale_shift_table").data_ptr(),
            original.at("head.modulation").data_ptr());

  auto back = DitToOriginalNames(*diffusers);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(Keys(*back), Keys(original));
  for (const auto& [name, tensor] : original) {
    EXPECT_EQ(back->at(name).data_ptr(), tensor.data_ptr()) << name;
  }
  // Loading the converted dict into a fresh model consumes every key and misses none.
  WanModel fresh = ModelWith13BNames();
  EXPECT_TRUE(io::LoadStateDict(*fresh, *back).ok());
  // Already-original input passes through unchanged.
  auto same = DitToOriginalNames(original);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(Keys(*same), Keys(original));
}

TEST(DitKeyMapTest, SingleNames) {
  EXPECT_EQ(*DitKeyToDiffusers("blocks.7.norm3.bias"), "blocks.7.norm2.bias");
  EXPECT_EQ(*DitKeyToOriginal("blocks.7.norm2.bias"), "blocks.7.norm3.bias");
  EXPECT_EQ(*DitKeyToDiffusers("blocks.12.self_attn.o.weight"), "blocks.12.attn1.to_out.0.weight");
  EXPECT_EQ(*DitKeyToDiffusers("blocks.0.cross_attn.norm_k.weight"),
            "blocks.0.attn2.norm_k.weight");
  EXPECT_EQ(*DitKeyToDiffusers("blocks.3.ffn.0.weight"), "blocks.3.ffn.net.0.proj.weight");
  EXPECT_EQ(*DitKeyToDiffusers("time_projection.1.bias"), "condition_embedder.time_proj.bias");
  EXPECT_EQ(*DitKeyToDiffusers("model.diffusion_model.head.head.weight"), "proj_out.weight");
  EXPECT_EQ(*DitKeyToOriginal("blocks.2.scale_shift_table"), "blocks.2.modulation");
  // Attention-kind parameters travel with their layer.
  EXPECT_EQ(*DitKeyToDiffusers("blocks.5.self_attn.attn_core.feature_map.weight"),
            "blocks.5.attn1.attn_core.feature_map.weight");
  EXPECT_EQ(*DitKeyToOriginal("blocks.5.attn1.attn_core.feature_map.weight"),
            "blocks.5.self_attn.attn_core.feature_map.weight");
  for (const char* bad : {"blocks.1.norm1.weight", "blocks.x.modulation", "head.norm.weight",
                          "blocks.1.self_attn.q.lora.weight", "img_emb.proj.0.weight",
                          "blocks.1.cross_attn.k_img.weight", "patch_embedding"}) {
    EXPECT_EQ(DitKeyToDiffusers(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(DitKeyToOriginal("blocks.1.norm3.weight").ok());  // affine-free in diffusers
}

TEST(DitKeyMapTest, DetectionAndUnknownKeys) {
  io::TensorMap comfy = {{"model.diffusion_model.time_embedding.0.weight", torch::zeros({1})},
                         {"model.diffusion_model.blocks.0.modulation", torch::zeros({1})}};
  auto stripped = DitToOriginalNames(comfy);
  ASSERT_TRUE(stripped.ok()) << stripped.status();
  EXPECT_EQ(Keys(*stripped),
            (std::set<std::string>{"time_embedding.0.weight", "blocks.0.modulation"}));

  io::TensorMap neither = {{"encoder.weight", torch::zeros({1})}};
  EXPECT_EQ(DetectDitKeyLayout(neither).status().code(), absl::StatusCode::kInvalidArgument);
  io::TensorMap both = {{"time_embedding.0.weight", torch::zeros({1})},
                        {"proj_out.weight", torch::zeros({1})}};
  EXPECT_FALSE(DetectDitKeyLayout(both).ok());

  io::TensorMap i2v = {{"time_embedding.0.weight", torch::zeros({1})},
                       {"img_emb.proj.1.weight", torch::zeros({1})}};
  auto status = DitToDiffusersNames(i2v).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("img_emb.proj.1.weight"), std::string::npos) << status;
  EXPECT_FALSE(DitToOriginalNames(i2v).ok());
}

}  // namespace
}  // namespace linvideo::core::wan
