#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/models/wan/wan_config.h"

namespace linvideo::core::wan {
namespace {

using attention::AttentionKind;
using nlohmann::json;

// The config.json published with Wan-AI/Wan2.1-T2V-1.3B (omits text_dim, qk_norm, ...).
const char kOfficial13B[] = R"({
  "_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": 1536, "eps": 1e-06,
  "ffn_dim": 8960, "freq_dim": 256, "in_dim": 16, "model_type": "t2v", "num_heads": 12,
  "num_layers": 30, "out_dim": 16, "text_len": 512})";

// The transformer/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers.
const char kDiffusers13B[] = R"({
  "_class_name": "WanTransformer3DModel", "_diffusers_version": "0.33.0.dev0",
  "added_kv_proj_dim": null, "attention_head_dim": 128, "cross_attn_norm": true, "eps": 1e-06,
  "ffn_dim": 8960, "freq_dim": 256, "image_dim": null, "in_channels": 16,
  "num_attention_heads": 12, "num_layers": 30, "out_channels": 16, "patch_size": [1, 2, 2],
  "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 1024, "text_dim": 4096})";

void ExpectSame(const WanConfig& a, const WanConfig& b) {
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.ffn_dim, b.ffn_dim);
  EXPECT_EQ(a.freq_dim, b.freq_dim);
  EXPECT_EQ(a.text_dim, b.text_dim);
  EXPECT_EQ(a.text_len, b.text_len);
  EXPECT_EQ(a.in_dim, b.in_dim);
  EXPECT_EQ(a.out_dim, b.out_dim);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.patch_size, b.patch_size);
  EXPECT_DOUBLE_EQ(a.eps, b.eps);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.cross_attn_norm, b.cross_attn_norm);
  EXPECT_EQ(a.rope_max_seq_len, b.rope_max_seq_len);
  EXPECT_EQ(a.attention_kinds, b.attention_kinds);
}

TEST(DitConfigTest, ParsesOfficialAndDiffusers13BIdentically) {
  auto official = WanConfig::FromJson(json::parse(kOfficial13B));
  auto diffusers = WanConfig::FromJson(json::parse(kDiffusers13B));
  ASSERT_TRUE(official.ok()) << official.status();
  ASSERT_TRUE(diffusers.ok()) << diffusers.status();
  EXPECT_EQ(DetectDitConfigFormat(json::parse(kOfficial13B)), DitConfigFormat::kOriginal);
  EXPECT_EQ(DetectDitConfigFormat(json::parse(kDiffusers13B)), DitConfigFormat::kDiffusers);
  EXPECT_EQ(official->dim, 1536);
  EXPECT_EQ(official->head_dim(), 128);
  EXPECT_EQ(official->text_dim, 4096);  // official default for the omitted field
  EXPECT_TRUE(official->qk_norm);
  EXPECT_TRUE(official->cross_attn_norm);
  EXPECT_EQ(official->attention_kinds, std::vector<AttentionKind>(30, AttentionKind::kSoftmax));
  ExpectSame(*official, *diffusers);
  ExpectSame(*official, *NamedDitConfig("wan2.1-t2v-1.3b"));
}

TEST(DitConfigTest, AppliesEachLayoutsDefaults) {
  auto official = WanConfig::FromJson(json::object());
  ASSERT_TRUE(official.ok()) << official.status();
  EXPECT_EQ(official->dim, 2048);  // WanModel.__init__ defaults
  EXPECT_EQ(official->num_heads, 16);
  EXPECT_EQ(official->num_layers, 32);
  EXPECT_EQ(official->attention_kinds.size(), 32u);
  auto diffusers = WanConfig::FromJson(json{{"_class_name", "WanTransformer3DModel"}});
  ASSERT_TRUE(diffusers.ok()) << diffusers.status();
  EXPECT_EQ(diffusers->dim, 5120);  // WanTransformer3DModel defaults (14B)
  EXPECT_EQ(diffusers->num_layers, 40);
  EXPECT_EQ(diffusers->ffn_dim, 13824);
  ExpectSame(*diffusers, *NamedDitConfig("wan2.1-t2v-14b"));
}

TEST(DitConfigTest, RoundTripsBothLayoutsWithAttentionKinds) {
  WanConfig tiny = *NamedDitConfig("tiny");
  tiny.qk_norm = false;
  tiny.text_len = 20;
  tiny.attention_kinds = {AttentionKind::kLinear, AttentionKind::kSoftmax};
  for (auto format : {DitConfigFormat::kOriginal, DitConfigFormat::kDiffusers}) {
    const json j = tiny.ToJson(format);
    EXPECT_EQ(DetectDitConfigFormat(j), format);
    EXPECT_EQ(j["attention_kinds"], json({"linear", "softmax"}));
    auto back = WanConfig::FromJson(j);
    ASSERT_TRUE(back.ok()) << back.status() << j.dump();
    ExpectSame(tiny, *back);
  }
  EXPECT_TRUE(tiny.ToJson(DitConfigFormat::kDiffusers)["qk_norm"].is_null());
  // All-softmax configs keep the official files' key set.
  EXPECT_FALSE(NamedDitConfig("tiny")->ToJson().contains("attention_kinds"));
}

TEST(DitConfigTest, NamedConfigs) {
  for (const auto& name : NamedDitConfigNames()) {
    auto c = NamedDitConfig(name);
    ASSERT_TRUE(c.ok()) << name;
    EXPECT_TRUE(c->Validate().ok());
  }
  auto tiny = NamedDitConfig("tiny");
  EXPECT_EQ(tiny->dim, 128);
  EXPECT_EQ(tiny->head_dim(), 64);
  EXPECT_EQ(tiny->num_layers, 2);
  EXPECT_EQ(NamedDitConfig("wan2.1-t2v-14b")->head_dim(), 128);
  auto unknown = NamedDitConfig("wan2.2");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("tiny"), std::string::npos);
}

absl::StatusCode ParseCode(const std::string& text) {
  return WanConfig::FromJson(json::parse(text)).status().code();
}

TEST(DitConfigTest, RejectsInvalidAndUnsupportedConfigs) {
  using C = absl::StatusCode;
  EXPECT_EQ(ParseCode(R"({"dim": 100, "num_heads": 3})"), C::kInvalidArgument);  // dim % heads
  EXPECT_EQ(ParseCode(R"({"dim": 30, "num_heads": 6})"), C::kInvalidArgument);   // head_dim 5
  EXPECT_EQ(ParseCode(R"({"dim": 8, "num_heads": 2})"), C::kInvalidArgument);    // head_dim 4
  EXPECT_EQ(ParseCode(R"({"num_layers": 0})"), C::kInvalidArgument);
  // Sized before validation: found by model_config_fuzz as an out-of-memory abort.
  EXPECT_EQ(ParseCode(R"({"num_layers": 111111111131111116})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"num_layers": 1025, "in_channels": 16})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"num_attention_heads": 1111111111111111116})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"ffn_dim": 1000000000})"),
            C::kInvalidArgument);  // refused, not allocated
  EXPECT_EQ(ParseCode(R"({"text_len": 100000})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"num_attention_heads": 12, "attention_head_dim": 1e3})"),
            C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"ffn_dim": -4})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"dim": "1536"})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"qk_norm": 1})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"patch_size": [1, 2]})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"num_layers": 2, "attention_kinds": ["softmax"]})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"num_layers": 1, "attention_kinds": ["sparse"]})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"model_type": "t3v"})"), C::kInvalidArgument);
  EXPECT_EQ(ParseCode(R"({"model_type": "i2v"})"), C::kUnimplemented);
  EXPECT_EQ(ParseCode(R"({"model_type": "flf2v"})"), C::kUnimplemented);
  EXPECT_EQ(ParseCode(R"({"window_size": [4, 4]})"), C::kUnimplemented);
  EXPECT_EQ(ParseCode(R"({"in_channels": 36, "image_dim": 1280})"), C::kUnimplemented);
  EXPECT_EQ(ParseCode(R"({"in_channels": 16, "added_kv_proj_dim": 5120})"), C::kUnimplemented);
  EXPECT_EQ(ParseCode(R"({"in_channels": 16, "qk_norm": "rms_norm"})"), C::kUnimplemented);
  EXPECT_EQ(ParseCode("[1, 2]"), C::kInvalidArgument);
  EXPECT_TRUE(WanConfig::FromJson(json::parse(R"({"window_size": [-1, -1]})")).ok());

  auto status = WanConfig::FromJson(json::parse(R"({"dim": 100, "num_heads": 3})")).status();
  EXPECT_NE(status.message().find("num_heads"), std::string::npos) << status;
  WanConfig mismatch = *NamedDitConfig("tiny");
  mismatch.num_layers = 3;  // without SetNumLayers: kinds no longer match
  EXPECT_NE(mismatch.Validate().message().find("attention_kinds"), std::string::npos);
}

}  // namespace
}  // namespace linvideo::core::wan
