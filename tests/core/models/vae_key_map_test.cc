#include "core/models/wan/vae_key_map.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "core/io/state_dict.h"

namespace linvideo::core::wan {
namespace {

// Every parameter of the full-size Wan 2.1 VAE maps to a distinct diffusers name and back.
TEST(VaeKeyMapTest, FullSizeRoundTrip) {
  const VaeConfig config = *VaeConfig::Named("wan2.1");
  absl::StatusOr<WanVae> vae = CreateWanVae(config);
  ASSERT_TRUE(vae.ok()) << vae.status();
  const VaeKeyMap map(config);
  std::set<std::string> diffusers;
  size_t count = 0;
  for (const auto& p : (*vae)->named_parameters()) {
    ++count;
    std::optional<std::string> d = map.ToDiffusers(p.key());
    ASSERT_TRUE(d.has_value()) << p.key();
    EXPECT_TRUE(diffusers.insert(*d).second) << "duplicate " << *d;
    EXPECT_EQ(map.ToOfficial(*d), p.key());
  }
  EXPECT_EQ(diffusers.size(), count);
  // Names AutoencoderKLWan uses (diffusers' convert_wan_to_diffusers.py groups the decoder's
  // upsamples 0-2 / 4-6 / 8-10 / 12-14 into up_blocks 0-3, upsamplers at 3 / 7 / 11).
  for (const char* name : {"quant_conv.weight",
                           "post_quant_conv.bias",
                           "encoder.conv_in.weight",
                           "encoder.down_blocks.0.norm1.gamma",
                           "encoder.down_blocks.2.resample.1.weight",
                           "encoder.down_blocks.3.conv_shortcut.weight",
                           "encoder.down_blocks.5.time_conv.weight",
                           "encoder.down_blocks.8.time_conv.bias",
                           "encoder.down_blocks.10.conv2.weight",
                           "encoder.mid_block.resnets.1.norm2.gamma",
                           "encoder.mid_block.attentions.0.proj.bias",
                           "encoder.norm_out.gamma",
                           "encoder.conv_out.weight",
                           "decoder.conv_in.bias",
                           "decoder.mid_block.attentions.0.to_qkv.weight",
                           "decoder.up_blocks.0.resnets.2.conv2.weight",
                           "decoder.up_blocks.0.upsamplers.0.time_conv.weight",
                           "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
                           "decoder.up_blocks.1.upsamplers.0.time_conv.bias",
                           "decoder.up_blocks.2.upsamplers.0.resample.1.weight",
                           "decoder.up_blocks.3.resnets.2.norm1.gamma",
                           "decoder.norm_out.gamma",
                           "decoder.conv_out.weight"}) {
    EXPECT_EQ(diffusers.count(name), 1u) << name;
  }
  // upsample2d / downsample2d have no time_conv; the last decoder stage has no upsampler.
  EXPECT_EQ(diffusers.count("decoder.up_blocks.2.upsamplers.0.time_conv.weight"), 0u);
  EXPECT_EQ(diffusers.count("encoder.down_blocks.2.time_conv.weight"), 0u);
  EXPECT_EQ(diffusers.count("decoder.up_blocks.3.upsamplers.0.resample.1.weight"), 0u);
  EXPECT_EQ(map.ToDiffusers("decoder.upsamples.15.residual.0.gamma"), std::nullopt);
  EXPECT_EQ(map.ToDiffusers("encoder.middle.0.residual.1.weight"), std::nullopt);
  EXPECT_EQ(map.ToOfficial("decoder.up_blocks.4.resnets.0.norm1.gamma"), std::nullopt);
}

TEST(VaeKeyMapTest, LoadsDiffusersStateDict) {
  torch::NoGradGuard no_grad;
  const VaeConfig config = *VaeConfig::Named("tiny");
  torch::manual_seed(0);
  WanVae source = *CreateWanVae(config);
  torch::manual_seed(1);
  WanVae target = *CreateWanVae(config);

  io::TensorMap official = io::StateDict(*source);
  EXPECT_EQ(DetectVaeKeyFormat(official), VaeKeyFormat::kOfficial);
  absl::StatusOr<io::TensorMap> diffusers = ToDiffusersVaeStateDict(official, config);
  ASSERT_TRUE(diffusers.ok()) << diffusers.status();
  EXPECT_EQ(DetectVaeKeyFormat(*diffusers), VaeKeyFormat::kDiffusers);
  EXPECT_EQ(diffusers->size(), official.size());
  EXPECT_EQ(diffusers->count("decoder.up_blocks.1.upsamplers.0.time_conv.weight"), 1u);

  ASSERT_TRUE(LoadWanVaeWeights(target, *diffusers).ok());
  torch::Tensor z = torch::randn({1, 16, 2, 2, 2});
  EXPECT_TRUE(torch::equal(target->Decode(z), source->Decode(z)));

  // Official names load as they are.
  torch::manual_seed(2);
  WanVae again = *CreateWanVae(config);
  ASSERT_TRUE(LoadWanVaeWeights(again, official).ok());
  EXPECT_TRUE(torch::equal(again->Decode(z), source->Decode(z)));

  // A name that maps nowhere is reported by the strict load.
  io::TensorMap extra = *diffusers;
  extra["decoder.up_blocks.0.extra.weight"] = torch::zeros({1});
  absl::Status s = LoadWanVaeWeights(target, extra);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("decoder.up_blocks.0.extra.weight"), std::string::npos) << s;
  // And one missing.
  io::TensorMap missing = *diffusers;
  missing.erase("decoder.conv_out.bias");
  s = LoadWanVaeWeights(target, missing);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("decoder.head.2.bias"), std::string::npos) << s;
}

}  // namespace
}  // namespace linvideo::core::wan
