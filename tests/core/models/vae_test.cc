#include "core/models/wan/vae.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

#include "core/common/runtime.h"

namespace linvideo::core::wan {
namespace {

using vae::CausalConv3d;
using vae::FeatureCache;

WanVae TinyVae(uint64_t seed = 0) {
  torch::manual_seed(seed);
  absl::StatusOr<WanVae> vae = CreateWanVae(*VaeConfig::Named("tiny"));
  EXPECT_TRUE(vae.ok()) << vae.status();
  return *vae;
}

double MaxRelError(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

class VaeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { InitRuntime(); }
  torch::NoGradGuard no_grad_;
};

TEST_F(VaeTest, DecodedFrameCountIsCausal) {
  WanVae vae = TinyVae();
  for (int64_t f : {1, 2, 3}) {
    torch::Tensor z = torch::randn({1, 16, f, 2, 3});
    torch::Tensor video = vae->Decode(z);
    EXPECT_EQ(video.sizes(), (std::vector<int64_t>{1, 3, 1 + 4 * (f - 1), 16, 24})) << f;
    EXPECT_EQ(vae->DecodedFrames(f), 1 + 4 * (f - 1));
    EXPECT_LE(video.abs().max().item<float>(), 1.0f);
    EXPECT_TRUE(video.isfinite().all().item<bool>());
  }
}

TEST_F(VaeTest, EncodeShapeAndNormalisation) {
  WanVae vae = TinyVae();
  torch::Tensor video = torch::rand({2, 3, 9, 16, 24}) * 2 - 1;
  VaeLatentDistribution dist = vae->EncodeDistribution(video);
  EXPECT_EQ(dist.mu.sizes(), (std::vector<int64_t>{2, 16, 3, 2, 3}));
  EXPECT_EQ(dist.logvar.sizes(), dist.mu.sizes());
  EXPECT_EQ(vae->LatentFrames(9), 3);
  torch::Tensor z = vae->Encode(video);
  EXPECT_TRUE(torch::allclose(z, vae->Normalize(dist.mu)));
  EXPECT_TRUE(torch::allclose(vae->Denormalize(z), dist.mu, 1e-5, 1e-5));
  // Channel c is shifted by mean[c] and scaled by 1/std[c].
  const VaeConfig& c = vae->config();
  torch::Tensor mu = torch::zeros({1, 16, 1, 1, 1});
  mu[0][5] = 1.0;
  torch::Tensor n = vae->Normalize(mu);
  EXPECT_NEAR(n[0][5].item<float>(), (1.0 - c.latents_mean[5]) / c.latents_std[5], 1e-5);
  EXPECT_NEAR(n[0][0].item<float>(), -c.latents_mean[0] / c.latents_std[0], 1e-5);
}

// The cache makes decoding causal and chunk-consistent: decoding latents [0, k) yields exactly the
// first 1 + 4(k-1) frames of decoding all latents.
TEST_F(VaeTest, DecodePrefixMatchesFullDecode) {
  WanVae vae = TinyVae(1);
  torch::Tensor z = torch::randn({1, 16, 4, 2, 2});
  torch::Tensor full = vae->Decode(z);
  for (int64_t k : {1, 2, 3}) {
    torch::Tensor prefix = vae->Decode(z.narrow(2, 0, k));
    torch::Tensor expected = full.narrow(2, 0, 1 + 4 * (k - 1));
    EXPECT_LT(MaxRelError(prefix, expected), 1e-6) << k;
  }
  // Later latents change later frames only.
  torch::Tensor z2 = z.clone();
  z2.narrow(2, 3, 1).add_(1.0);
  torch::Tensor other = vae->Decode(z2);
  EXPECT_TRUE(torch::equal(other.narrow(2, 0, 9), full.narrow(2, 0, 9)));
  EXPECT_FALSE(torch::allclose(other.narrow(2, 9, 4), full.narrow(2, 9, 4)));
}

TEST_F(VaeTest, EncodePrefixMatchesFullEncode) {
  WanVae vae = TinyVae(2);
  torch::Tensor video = torch::rand({1, 3, 9, 16, 16}) * 2 - 1;
  torch::Tensor full = vae->Encode(video);
  torch::Tensor prefix = vae->Encode(video.narrow(2, 0, 5));
  EXPECT_LT(MaxRelError(prefix, full.narrow(2, 0, 2)), 1e-6);
}

// A cached causal conv run chunk by chunk equals one run over the whole sequence.
TEST_F(VaeTest, CachedConvMatchesWholeSequence) {
  torch::manual_seed(3);
  CausalConv3d conv(4, 5, std::array<int64_t, 3>{3, 3, 3}, std::array<int64_t, 3>{1, 1, 1},
                    std::array<int64_t, 3>{1, 1, 1});
  torch::Tensor x = torch::randn({2, 4, 8, 5, 6});
  torch::Tensor whole = conv->forward(x);  // zero padding on the past side only
  FeatureCache cache;
  std::vector<torch::Tensor> parts;
  int64_t start = 0;
  for (int64_t len : {1, 1, 3, 1, 2}) {
    cache.Rewind();
    parts.push_back(vae::CachedConv(*conv, x.narrow(2, start, len), &cache));
    start += len;
  }
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_LT(MaxRelError(torch::cat(parts, 2), whole), 1e-6);
  // Causal: frame t depends on frames <= t only.
  torch::Tensor x2 = x.clone();
  x2.narrow(2, 5, 1).add_(1.0);
  EXPECT_TRUE(torch::equal(conv->forward(x2).narrow(2, 0, 5), whole.narrow(2, 0, 5)));
}

TEST_F(VaeTest, RmsNormFollowsNormalizeSemantics) {
  vae::RmsNorm norm(6, /*images=*/false);
  torch::NoGradGuard guard;
  norm->gamma.copy_(torch::linspace(0.5, 1.5, 6).view({6, 1, 1, 1}));
  torch::Tensor x = torch::randn({2, 6, 3, 4, 4});
  torch::Tensor expected = x / x.norm(2, 1, true) * std::sqrt(6.0) * norm->gamma;
  EXPECT_LT(MaxRelError(norm->forward(x), expected), 1e-6);
  EXPECT_TRUE(
      torch::equal(norm->forward(torch::zeros({1, 6, 1, 2, 2})), torch::zeros({1, 6, 1, 2, 2})));
}

// Decode keeps its causal cache per call, so simultaneous calls on one module do not interfere.
TEST_F(VaeTest, ConcurrentDecodesAgree) {
  WanVae vae = TinyVae(4);
  torch::Tensor z1 = torch::randn({1, 16, 2, 2, 2});
  torch::Tensor z2 = torch::randn({1, 16, 2, 2, 2});
  torch::Tensor ref1 = vae->Decode(z1), ref2 = vae->Decode(z2);
  torch::Tensor a, b;
  auto run = [&](const torch::Tensor* z, torch::Tensor* out) {
    torch::NoGradGuard guard;
    // One intra-op thread per caller: two OpenMP teams spinning on a shared 2-core machine make
    // the test slow without testing anything more.
    at::set_num_threads(1);
    *out = vae->Decode(*z);
  };
  std::thread t1(run, &z1, &a), t2(run, &z2, &b);
  t1.join();
  t2.join();
  EXPECT_TRUE(torch::equal(a, ref1));
  EXPECT_TRUE(torch::equal(b, ref2));
}

// With grad mode on (training), gradients reach the decoder's and encoder's parameters, and the
// result equals the no-grad one.
TEST(VaeGradTest, GradientsFlow) {
  WanVae vae = TinyVae(5);
  torch::Tensor z = torch::randn({1, 16, 2, 2, 2}, torch::requires_grad());
  torch::Tensor video = vae->Decode(z);
  video.sum().backward();
  ASSERT_TRUE(z.grad().defined());
  EXPECT_GT(z.grad().abs().sum().item<float>(), 0.0f);
  auto p = vae->named_parameters();
  EXPECT_TRUE(p["decoder.middle.1.to_qkv.weight"].grad().defined());
  EXPECT_TRUE(p["decoder.upsamples.2.time_conv.weight"].grad().defined());
  {
    torch::NoGradGuard no_grad;
    EXPECT_LT(MaxRelError(video.detach(), vae->Decode(z)), 1e-5);
  }
  VaeLatentDistribution dist = vae->EncodeDistribution(torch::rand({1, 3, 5, 16, 16}));
  (dist.mu.square().mean() + dist.logvar.exp().mean()).backward();
  EXPECT_TRUE(p["encoder.middle.1.proj.weight"].grad().defined());
  EXPECT_TRUE(p["encoder.downsamples.3.time_conv.weight"].grad().defined());
}

TEST_F(VaeTest, ParameterNamesAreOfficial) {
  WanVae vae = TinyVae();
  std::vector<std::string> names;
  for (const auto& p : vae->named_parameters()) names.push_back(p.key());
  auto has = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  EXPECT_TRUE(has("encoder.conv1.weight"));
  EXPECT_TRUE(has("encoder.downsamples.0.residual.0.gamma"));
  EXPECT_TRUE(has("encoder.downsamples.1.resample.1.weight"));  // downsample2d
  EXPECT_FALSE(has("encoder.downsamples.1.time_conv.weight"));
  EXPECT_TRUE(has("encoder.downsamples.3.time_conv.weight"));  // downsample3d
  EXPECT_TRUE(has("encoder.downsamples.2.shortcut.weight"));   // 8 -> 16 channels
  EXPECT_TRUE(has("encoder.middle.1.to_qkv.bias"));
  EXPECT_TRUE(has("encoder.head.2.weight"));
  EXPECT_TRUE(has("conv1.weight"));
  EXPECT_TRUE(has("conv2.bias"));
  EXPECT_TRUE(has("decoder.upsamples.2.time_conv.weight"));  // upsample3d after 2 blocks
  EXPECT_TRUE(has("decoder.upsamples.3.shortcut.weight"));   // half-width stage input
  EXPECT_TRUE(has("decoder.head.0.gamma"));
  // Official shapes: RMS norm gamma [C,1,1,1] (3D) / [C,1,1] (attention); 2D conv weights.
  auto p = vae->named_parameters();
  EXPECT_EQ(p["encoder.head.0.gamma"].sizes(), (std::vector<int64_t>{32, 1, 1, 1}));
  EXPECT_EQ(p["decoder.middle.1.norm.gamma"].sizes(), (std::vector<int64_t>{32, 1, 1}));
  EXPECT_EQ(p["decoder.middle.1.to_qkv.weight"].sizes(), (std::vector<int64_t>{96, 32, 1, 1}));
  EXPECT_EQ(p["decoder.upsamples.2.resample.1.weight"].sizes(),
            (std::vector<int64_t>{16, 32, 3, 3}));
  EXPECT_EQ(p["decoder.upsamples.2.time_conv.weight"].sizes(),
            (std::vector<int64_t>{64, 32, 3, 1, 1}));
}

TEST_F(VaeTest, StatusWrappersRejectBadShapes) {
  WanVae vae = TinyVae();
  absl::StatusOr<torch::Tensor> r = DecodeLatents(vae, torch::randn({1, 8, 2, 2, 2}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("[B, 16"), std::string::npos) << r.status();
  r = EncodeVideo(vae, torch::randn({1, 3, 6, 16, 16}));  // 6 frames is not 1 + 4k
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = EncodeVideo(vae, torch::randn({1, 3, 5, 12, 16}));  // 12 is not a multiple of 8
  EXPECT_FALSE(r.ok());
  r = EncodeVideo(vae, torch::randn({1, 3, 5, 16, 16}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sizes(), (std::vector<int64_t>{1, 16, 2, 2, 2}));
  VaeConfig bad;
  bad.z_dim = 4;  // mean/std still have 16 values
  EXPECT_FALSE(CreateWanVae(bad).ok());
}

}  // namespace
}  // namespace linvideo::core::wan
