#include "core/models/wan/t5_key_map.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "absl/strings/match.h"
#include "core/io/state_dict.h"
#include "core/models/wan/t5_encoder.h"

namespace linvideo::core::wan {
namespace {

T5Encoder MakeTiny(bool shared_pos = false, uint64_t seed = 0) {
  T5Config c = *T5Config::Named("tiny");
  c.shared_pos = shared_pos;
  torch::manual_seed(seed);
  return *CreateT5Encoder(c);
}

io::TensorMap Clone(const io::TensorMap& m) {
  io::TensorMap out;
  for (const auto& [k, v] : m) out[k] = v.clone();
  return out;
}

TEST(T5KeyMapTest, SingleNames) {
  EXPECT_EQ(HfToWanT5Key("shared.weight"), "token_embedding.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.embed_tokens.weight"), "token_embedding.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.final_layer_norm.weight"), "norm.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.block.23.layer.0.SelfAttention.q.weight"),
            "blocks.23.attn.q.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.block.3.layer.0.SelfAttention.relative_attention_bias.weight"),
            "blocks.3.pos_embedding.embedding.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                         /*shared_pos=*/true),
            "pos_embedding.embedding.weight");
  // wi_0 is the GELU branch (HF: act(wi_0(x)) * wi_1(x)) = the official gate.
  EXPECT_EQ(HfToWanT5Key("encoder.block.1.layer.1.DenseReluDense.wi_0.weight"),
            "blocks.1.ffn.gate.0.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.block.1.layer.1.DenseReluDense.wi_1.weight"),
            "blocks.1.ffn.fc1.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.block.1.layer.1.DenseReluDense.wo.weight"),
            "blocks.1.ffn.fc2.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.block.1.layer.1.layer_norm.weight"), "blocks.1.norm2.weight");
  EXPECT_EQ(HfToWanT5Key("encoder.block.x.layer.0.layer_norm.weight"),
            "encoder.block.x.layer.0.layer_norm.weight");  // unknown: unchanged
  EXPECT_EQ(WanToHfT5Key("blocks.1.ffn.gate.0.weight"),
            "encoder.block.1.layer.1.DenseReluDense.wi_0.weight");
  EXPECT_EQ(WanToHfT5Key("token_embedding.weight"), "shared.weight");
}

TEST(T5KeyMapTest, RoundTripConsumesEveryKey) {
  for (bool shared : {false, true}) {
    T5Encoder enc = MakeTiny(shared);
    io::TensorMap wan = io::StateDict(*enc);
    auto hf = WanToHfT5(wan, shared);
    ASSERT_TRUE(hf.ok()) << hf.status();
    EXPECT_EQ(hf->size(), wan.size());
    for (const auto& [name, _] : *hf) {
      EXPECT_TRUE(absl::StartsWith(name, "encoder.") || name == "shared.weight") << name;
    }
    EXPECT_EQ(hf->count("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"),
              shared ? 0u : 1u);
    EXPECT_EQ(hf->count("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
              1u);
    auto layout = DetectT5KeyLayout(*hf);
    ASSERT_TRUE(layout.ok());
    EXPECT_EQ(*layout, T5KeyLayout::kHuggingFace);

    auto back = ToWanT5(*hf, shared);
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_EQ(back->size(), wan.size());
    for (const auto& [name, t] : wan) {
      ASSERT_EQ(back->count(name), 1u) << name;
      EXPECT_TRUE(torch::equal(back->at(name), t)) << name;
    }
  }
}

TEST(T5KeyMapTest, LoadsHuggingFaceWeightsStrictly) {
  T5Encoder src = MakeTiny(false, 1);
  auto hf = *WanToHfT5(Clone(io::StateDict(*src)));
  // HF UMT5EncoderModel state dicts carry the tied embedding twice; full checkpoints a decoder.
  hf["encoder.embed_tokens.weight"] = hf["shared.weight"];
  hf["decoder.block.0.layer.0.SelfAttention.q.weight"] = torch::zeros({32, 32});
  hf["lm_head.weight"] = torch::zeros({256, 32});

  T5Encoder dst = MakeTiny(false, 2);
  auto ids = torch::randint(0, 256, {2, 6}, torch::kLong);
  auto mask = torch::ones({2, 6}, torch::kLong);
  auto before = *dst->Encode(ids, mask);
  ASSERT_TRUE(LoadT5Weights(*dst, hf).ok());
  auto after = *dst->Encode(ids, mask);
  auto want = *src->Encode(ids, mask);
  EXPECT_TRUE(torch::equal(after, want));
  EXPECT_FALSE(torch::equal(before, want));

  // A Wan-named dict loads too.
  T5Encoder dst2 = MakeTiny(false, 3);
  ASSERT_TRUE(LoadT5Weights(*dst2, io::StateDict(*src)).ok());
  EXPECT_TRUE(torch::equal(*dst2->Encode(ids, mask), want));
}

TEST(T5KeyMapTest, MissingAndUnknownKeysAreErrors) {
  T5Encoder enc = MakeTiny();
  auto hf = *WanToHfT5(Clone(io::StateDict(*enc)));
  auto missing = hf;
  missing.erase("encoder.block.1.layer.1.DenseReluDense.wi_1.weight");
  auto s = LoadT5Weights(*MakeTiny(), missing);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blocks.1.ffn.fc1.weight"), std::string::npos) << s;

  auto extra = hf;
  extra["encoder.block.0.layer.0.SelfAttention.q.bias"] = torch::zeros({32});
  s = LoadT5Weights(*MakeTiny(), extra);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("q.bias"), std::string::npos) << s;

  io::TensorMap neither = {{"model.layers.0.weight", torch::zeros({1})}};
  EXPECT_FALSE(DetectT5KeyLayout(neither).ok());
  io::TensorMap mixed = {{"shared.weight", torch::zeros({1})},
                         {"blocks.0.norm1.weight", torch::zeros({1})}};
  EXPECT_FALSE(DetectT5KeyLayout(mixed).ok());
}

}  // namespace
}  // namespace linvideo::core::wan
