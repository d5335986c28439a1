#include "core/models/wan/vae_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace linvideo::core::wan {
namespace {

using nlohmann::json;

// The vae/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers (diffusers AutoencoderKLWan layout).
constexpr char kDiffusersConfig[] = R"({
  "_class_name": "AutoencoderKLWan",
  "_diffusers_version": "0.33.0.dev0",
  "attn_scales": [],
  "base_dim": 96,
  "dim_mult": [1, 2, 4, 4],
  "dropout": 0.0,
  "latents_mean": [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                   0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
  "latents_std": [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                  3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916],
  "num_res_blocks": 2,
  "temperal_downsample": [false, true, true],
  "z_dim": 16
})";

TEST(VaeConfigTest, Wan21Defaults) {
  absl::StatusOr<VaeConfig> c = VaeConfig::Named("wan2.1");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->base_dim, 96);
  EXPECT_EQ(c->z_dim, 16);
  EXPECT_EQ(c->dim_mult, (std::vector<int64_t>{1, 2, 4, 4}));
  EXPECT_EQ(c->num_res_blocks, 2);
  EXPECT_TRUE(c->attn_scales.empty());
  EXPECT_EQ(c->temperal_downsample, (std::vector<bool>{false, true, true}));
  ASSERT_EQ(c->latents_mean.size(), 16u);
  ASSERT_EQ(c->latents_std.size(), 16u);
  EXPECT_DOUBLE_EQ(c->latents_mean[0], -0.7571);
  EXPECT_DOUBLE_EQ(c->latents_std[15], 1.9160);
  EXPECT_EQ(c->temporal_stride(), 4);
  EXPECT_EQ(c->spatial_stride(), 8);
  EXPECT_TRUE(c->Validate().ok());
}

TEST(VaeConfigTest, TinyKeepsLatentChannels) {
  absl::StatusOr<VaeConfig> c = VaeConfig::Named("tiny");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_LT(c->base_dim, 96);
  EXPECT_EQ(c->z_dim, 16);
  EXPECT_EQ(c->temporal_stride(), 4);
  EXPECT_EQ(c->spatial_stride(), 8);
  EXPECT_FALSE(VaeConfig::Named("huge").ok());
}

TEST(VaeConfigTest, ParsesDiffusersConfig) {
  absl::StatusOr<VaeConfig> c = VaeConfig::FromJson(json::parse(kDiffusersConfig));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, *VaeConfig::Named("wan2.1"));
}

TEST(VaeConfigTest, ParsesMinimalWanStyleConfig) {
  absl::StatusOr<VaeConfig> c =
      VaeConfig::FromJson(json::parse(R"({"dim": 32, "z_dim": 16, "num_res_blocks": 1,
                      "temperal_downsample": [true, true, false]})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->base_dim, 32);
  EXPECT_EQ(c->num_res_blocks, 1);
  EXPECT_EQ(c->temperal_downsample, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(c->latents_mean, VaeConfig().latents_mean);  // defaults kept

  std::vector<double> mean(4, 0.5), stdv(4, 2.0);
  c = VaeConfig::FromJson(json{{"dim", 16}, {"z_dim", 4}, {"mean", mean}, {"std", stdv}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->z_dim, 4);
  EXPECT_EQ(c->latents_mean, mean);
  EXPECT_EQ(c->latents_std, stdv);
}

TEST(VaeConfigTest, JsonRoundTrip) {
  VaeConfig c = *VaeConfig::Named("tiny");
  c.temperal_downsample = {true, false, true};
  c.latents_mean[3] = 0.25;
  json j = c.ToJson();
  EXPECT_EQ(j["_class_name"], "AutoencoderKLWan");
  absl::StatusOr<VaeConfig> back = VaeConfig::FromJson(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, c);
}

TEST(VaeConfigTest, RejectsBadOrUnsupportedFields) {
  auto error = [](const std::string& text) {
    absl::StatusOr<VaeConfig> c = VaeConfig::FromJson(json::parse(text));
    EXPECT_FALSE(c.ok()) << text;
    return c.ok() ? std::string() : std::string(c.status().message());
  };
  EXPECT_NE(error(R"({"base_dim": 96, "is_residual": true})").find("is_residual"),
            std::string::npos);
  EXPECT_NE(error(R"({"base_dim": 96, "decoder_base_dim": 128})").find("decoder_base_dim"),
            std::string::npos);
  EXPECT_NE(error(R"({"base_dim": 96, "attn_scales": [1.0]})").find("attn_scales"),
            std::string::npos);
  EXPECT_NE(error(R"({"base_dim": 96, "temperal_downsample": [true]})").find("temperal_downsample"),
            std::string::npos);
  EXPECT_NE(error(R"({"base_dim": 96, "latents_mean": [0.0]})").find("latents_mean"),
            std::string::npos);
  EXPECT_NE(error(R"({"base_dim": "96"})").find("base_dim"), std::string::npos);
  EXPECT_NE(error(R"({"dim": 96, "std": [0.0]})").find("latents_std"), std::string::npos);
  EXPECT_NE(error(R"({"_class_name": "AutoencoderKL"})").find("_class_name"), std::string::npos);
  EXPECT_FALSE(VaeConfig::FromJson(json::array()).ok());
}

}  // namespace
}  // namespace linvideo::core::wan
