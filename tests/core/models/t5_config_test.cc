#include "core/models/wan/t5_config.h"

#include <gtest/gtest.h>

namespace linvideo::core::wan {
namespace {

// The text_encoder/config.json of the diffusers Wan 2.1 repos (google/umt5-xxl), trimmed.
nlohmann::json HfUmt5XxlJson() {
  return nlohmann::json::parse(R"({
    "architectures": ["UMT5EncoderModel"], "model_type": "umt5", "vocab_size": 256384,
    "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_heads": 64, "num_layers": 24,
    "num_decoder_layers": 24, "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128, "feed_forward_proj": "gated-gelu",
    "dense_act_fn": "gelu_new", "is_gated_act": true, "layer_norm_epsilon": 1e-06,
    "dropout_rate": 0.1, "tie_word_embeddings": false})");
}

TEST(T5ConfigTest, NamedUmt5XxlMatchesWan21) {
  auto c = T5Config::Named("umt5-xxl");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vocab, 256384);
  EXPECT_EQ(c->dim, 4096);
  EXPECT_EQ(c->dim_attn, 4096);
  EXPECT_EQ(c->dim_ffn, 10240);
  EXPECT_EQ(c->num_heads, 64);
  EXPECT_EQ(c->head_dim(), 64);
  EXPECT_EQ(c->num_layers, 24);
  EXPECT_EQ(c->num_buckets, 32);
  EXPECT_EQ(c->max_distance, 128);
  EXPECT_DOUBLE_EQ(c->eps, 1e-6);
  EXPECT_FALSE(c->shared_pos);
  EXPECT_TRUE(c->Validate().ok());
  auto tiny = T5Config::Named("tiny");
  ASSERT_TRUE(tiny.ok());
  EXPECT_TRUE(tiny->Validate().ok());
  auto bad = T5Config::Named("umt5-small");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("umt5-xxl"), std::string::npos);
}

TEST(T5ConfigTest, ReadsHuggingFaceConfig) {
  auto c = T5Config::FromJson(HfUmt5XxlJson());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, *T5Config::Named("umt5-xxl"));
}

TEST(T5ConfigTest, HfModelTypeT5SharesPositionTable) {
  auto j = HfUmt5XxlJson();
  j["model_type"] = "t5";
  j["d_kv"] = 32;
  auto c = T5Config::FromJson(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->shared_pos);
  EXPECT_EQ(c->dim_attn, 64 * 32);
}

TEST(T5ConfigTest, RejectsUngatedFeedForward) {
  auto j = HfUmt5XxlJson();
  j["feed_forward_proj"] = "relu";
  auto c = T5Config::FromJson(j);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("gated-gelu"), std::string::npos) << c.status();
  j.erase("feed_forward_proj");  // HF default is "relu"
  EXPECT_FALSE(T5Config::FromJson(j).ok());
}

// Found by model_config_fuzz: a non-string feed_forward_proj threw an uncaught exception.
TEST(T5ConfigTest, WrongTypesAndHugeSizesAreRefusedNotThrown) {
  for (auto [key, value] : {std::pair<const char*, nlohmann::json>{"feed_forward_proj", true},
                            {"model_type", 5},
                            {"num_heads", 1LL << 40},
                            {"d_kv", 1LL << 40}}) {
    auto j = HfUmt5XxlJson();
    j[key] = value;
    auto c = T5Config::FromJson(j);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_NE(c.status().message().find(key), std::string::npos) << c.status();
  }
}

TEST(T5ConfigTest, ReadsWanStyleConfig) {
  auto j = nlohmann::json::parse(R"({"vocab_size": 256384, "dim": 4096, "dim_attn": 4096,
    "dim_ffn": 10240, "num_heads": 64, "encoder_layers": 24, "decoder_layers": 24,
    "num_buckets": 32, "shared_pos": false, "dropout": 0.1})");
  auto c = T5Config::FromJson(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, *T5Config::Named("umt5-xxl"));

  auto k = nlohmann::json::parse(R"({"vocab": 100, "dim": 16, "dim_ffn": 24, "num_heads": 2,
    "num_layers": 3, "num_buckets": 8, "shared_pos": true})");
  auto d = T5Config::FromJson(k);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->vocab, 100);
  EXPECT_EQ(d->dim_attn, 16);  // defaults to dim
  EXPECT_EQ(d->num_layers, 3);
  EXPECT_EQ(d->num_buckets, 8);
  EXPECT_TRUE(d->shared_pos);
}

TEST(T5ConfigTest, ToJsonRoundTrips) {
  for (const char* name : {"umt5-xxl", "tiny"}) {
    T5Config c = *T5Config::Named(name);
    c.eps = 1e-5;
    auto back = T5Config::FromJson(c.ToJson());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, c) << name;
  }
  T5Config shared = *T5Config::Named("tiny");
  shared.shared_pos = true;
  EXPECT_EQ(shared.ToJson()["model_type"], "t5");
  EXPECT_EQ(*T5Config::FromJson(shared.ToJson()), shared);
}

TEST(T5ConfigTest, ErrorsNameTheProblem) {
  auto unknown = T5Config::FromJson(nlohmann::json::parse(R"({"hidden_size": 8})"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("d_model"), std::string::npos);

  auto j = HfUmt5XxlJson();
  j.erase("d_ff");
  auto missing = T5Config::FromJson(j);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("d_ff"), std::string::npos);

  j = HfUmt5XxlJson();
  j["num_heads"] = "64";
  EXPECT_FALSE(T5Config::FromJson(j).ok());

  T5Config c = *T5Config::Named("tiny");
  c.dim_attn = 30;  // not a multiple of 4 heads
  ASSERT_FALSE(c.Validate().ok());
  EXPECT_NE(c.Validate().message().find("num_heads"), std::string::npos);
  c = *T5Config::Named("tiny");
  c.num_buckets = 7;
  EXPECT_FALSE(c.Validate().ok());
  c = *T5Config::Named("tiny");
  c.max_distance = 8;  // must exceed num_buckets / 4 = 8
  EXPECT_FALSE(c.Validate().ok());
}

}  // namespace
}  // namespace linvideo::core::wan
