#include "core/models/wan/dit_ops.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "kernels/torch_compat.h"

namespace linvideo::core::wan::dit {
namespace {

TEST(DitOpsTest, SinusoidalEmbeddingByHand) {
  // dim 4: half 2, frequencies 10000^(-0/2) = 1 and 10000^(-1/2) = 0.01; layout [cos, sin].
  auto e = SinusoidalEmbedding(4, torch::tensor({0.0f, 1.0f, 999.0f}));
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(e.scalar_type(), torch::kFloat);
  const double t[3] = {0.0, 1.0, 999.0};
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(e[i][0].item<float>(), std::cos(t[i]), 1e-6);
    EXPECT_NEAR(e[i][1].item<float>(), std::cos(0.01 * t[i]), 1e-6);
    EXPECT_NEAR(e[i][2].item<float>(), std::sin(t[i]), 1e-6);
    EXPECT_NEAR(e[i][3].item<float>(), std::sin(0.01 * t[i]), 1e-6);
  }
  auto wide = SinusoidalEmbedding(256, torch::tensor({500.0f}));
  EXPECT_NEAR(wide[0][127].item<float>(), std::cos(500.0 * std::pow(10000.0, -127.0 / 128.0)),
              1e-6);
}

TEST(DitOpsTest, UnpatchifyPutsChannelFastest) {
  const int64_t B = 2, C = 3, F = 2, H = 2, W = 3, pt = 1, ph = 2, pw = 2;
  // Token value encodes (b, token, feature) so any misplacement shows.
  auto tokens = torch::arange(B * F * H * W * pt * ph * pw * C, torch::kFloat)
                    .view({B, F * H * W, pt * ph * pw * C});
  auto out = Unpatchify(tokens, {F, H, W}, {pt, ph, pw}, C);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{B, C, F * pt, H * ph, W * pw}));
  auto o = out.accessor<float, 5>();
  auto tk = tokens.accessor<float, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t f = 0; f < F; ++f)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            for (int64_t i = 0; i < ph; ++i)
              for (int64_t j = 0; j < pw; ++j) {
                const int64_t token = (f * H + h) * W + w;
                const int64_t feature = (i * pw + j) * C + c;  // (pt, ph, pw, c), c fastest
                ASSERT_EQ(o[b][c][f][h * ph + i][w * pw + j], tk[b][token][feature]);
              }
}

TEST(DitOpsTest, PatchifyMatmulEqualsStridedConv3d) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 4, 3, 6, 4});
  auto weight = torch::randn({5, 4, 1, 2, 2});
  auto bias = torch::randn({5});
  auto conv = torch::conv3d(x, weight, bias, {1, 2, 2});  // [B, 5, 3, 3, 2]
  auto expected = conv.flatten(2).transpose(1, 2);        // [B, N, 5]
  auto patches = Patchify(x, {1, 2, 2});
  auto got = torch::addmm(bias, patches.flatten(0, 1), weight.view({5, -1}).t()).view({2, -1, 5});
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-5));
  EXPECT_THROW(Patchify(torch::zeros({1, 4, 3, 5, 4}), {1, 2, 2}), c10::Error);
}

TEST(DitOpsTest, NormsMatchTheirFormulas) {
  torch::manual_seed(2);
  auto x = torch::randn({2, 5, 8}) * 3;
  auto w = torch::randn({8});
  auto rms = RmsNorm(x, w, 1e-6);
  auto expected = x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6) * w;
  EXPECT_TRUE(torch::allclose(rms, expected, 1e-5, 1e-5));

  auto scale = torch::randn({2, 1, 8}), shift = torch::randn({2, 1, 8});
  auto mean = x.mean(-1, true);
  auto var = (x - mean).pow(2).mean(-1, true);
  auto ln = (x - mean) / torch::sqrt(var + 1e-6);
  auto modulated = ModulatedLayerNorm(x, scale + 1, shift, 1e-6);
  EXPECT_TRUE(torch::allclose(modulated, ln * (1 + scale) + shift, 1e-5, 1e-5));
  {
    torch::NoGradGuard no_grad;  // in-place path
    EXPECT_TRUE(torch::allclose(ModulatedLayerNorm(x, scale + 1, shift, 1e-6), modulated));
    EXPECT_TRUE(torch::allclose(RmsNorm(x, w, 1e-6), rms));
  }
}

TEST(DitOpsTest, LinearCastsToWeightDtype) {
  torch::nn::Linear layer(8, 4);
  auto x = torch::randn({2, 3, 8});
  auto y = Linear(x, layer);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_TRUE(torch::allclose(y, layer->forward(x), 1e-5, 1e-5));
  layer->to(torch::kBFloat16);
  EXPECT_EQ(Linear(x, layer).scalar_type(), torch::kBFloat16);
}

// Under bf16 autocast with fp32 weights (training), a bf16 input goes to addmm as is: the same
// output and gradients, bit for bit, as first casting it to fp32 (which autocast undoes).
TEST(DitOpsTest, LinearUnderAutocastSkipsTheRoundTripBitIdentically) {
  torch::manual_seed(5);
  torch::nn::Linear layer(64, 32);
  auto base = torch::randn({4, 7, 64}).to(torch::kBFloat16);
  auto run = [&](bool round_trip) {
    layer->zero_grad();
    auto x = base.clone().requires_grad_(true);
    torch::Tensor y;
    {
      kernels::ScopedCpuBf16Autocast autocast(true);
      y = round_trip
              ? at::addmm(layer->bias, x.to(torch::kFloat).reshape({-1, 64}), layer->weight.t())
                    .view({4, 7, 32})
              : Linear(x, layer);
    }
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    y.to(torch::kFloat).pow(2).sum().backward();
    return std::vector<torch::Tensor>{y.detach(), x.grad(), layer->weight.grad().clone(),
                                      layer->bias.grad().clone()};
  };
  auto skipped = run(false), round_trip = run(true);
  for (size_t i = 0; i < skipped.size(); ++i)
    EXPECT_TRUE(torch::equal(skipped[i], round_trip[i])) << i;
}

}  // namespace
}  // namespace linvideo::core::wan::dit
