#include "core/models/wan/rope.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace linvideo::core::wan {
namespace {

TEST(RopeTest, SplitsHeadDimLikeTheOfficialCode) {
  EXPECT_EQ(RopeAxisPairs(128), (std::array<int64_t, 3>{22, 21, 21}));  // 44/42/42 dims
  EXPECT_EQ(RopeAxisPairs(64), (std::array<int64_t, 3>{12, 10, 10}));
  EXPECT_EQ(RopeAxisPairs(12), (std::array<int64_t, 3>{2, 2, 2}));
}

TEST(RopeTest, AnglesOfASmallGridByHand) {
  // head_dim 12: two pairs per axis, each axis has 4 dims -> inverse frequencies 1 and
  // 10000^(-2/4) = 0.01. Token (f, h, w) has angles [f, .01f, h, .01h, w, .01w].
  const int64_t F = 2, H = 3, W = 2;
  auto angles = RopeAngles(12, F, H, W);
  ASSERT_EQ(angles.sizes(), (std::vector<int64_t>{F * H * W, 6}));
  EXPECT_EQ(angles.scalar_type(), torch::kDouble);
  auto a = angles.accessor<double, 2>();
  for (int64_t f = 0; f < F; ++f)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w) {
        const int64_t n = (f * H + h) * W + w;
        const double expected[6] = {1.0 * f, 0.01 * f, 1.0 * h, 0.01 * h, 1.0 * w, 0.01 * w};
        for (int j = 0; j < 6; ++j) EXPECT_NEAR(a[n][j], expected[j], 1e-15) << n << "," << j;
      }
}

TEST(RopeTest, AnglesAtHeadDim128UsePerAxisLadders) {
  auto angles = RopeAngles(128, 3, 2, 2);
  auto a = angles.accessor<double, 2>();
  const int64_t token = (2 * 2 + 1) * 2 + 1;  // f=2, h=1, w=1
  EXPECT_NEAR(a[token][0], 2.0, 1e-15);
  EXPECT_NEAR(a[token][1], 2.0 * std::pow(10000.0, -2.0 / 44.0), 1e-15);  // t axis: 44 dims
  EXPECT_NEAR(a[token][22], 1.0, 1e-15);                                  // first h pair
  EXPECT_NEAR(a[token][23], std::pow(10000.0, -2.0 / 42.0), 1e-15);       // h axis: 42 dims
  EXPECT_NEAR(a[token][43], 1.0, 1e-15);                                  // first w pair
  EXPECT_NEAR(a[token][63], std::pow(10000.0, -40.0 / 42.0), 1e-15);      // last w pair
}

TEST(RopeTest, RotatesAdjacentPairs) {
  auto table = MakeRopeTable(12, 1, 2, 1);  // token 1 has h = 1: pairs 2 and 3 rotate
  auto x = torch::zeros({1, 2, 1, 12});
  x[0][1][0][4] = 1.0;  // pair 2 = (x[4], x[5]) = (1, 0), angle 1
  x[0][1][0][7] = 1.0;  // pair 3 = (x[6], x[7]) = (0, 1), angle 0.01
  auto y = ApplyRope(x, table);
  EXPECT_NEAR(y[0][1][0][4].item<float>(), std::cos(1.0), 1e-7);
  EXPECT_NEAR(y[0][1][0][5].item<float>(), std::sin(1.0), 1e-7);
  EXPECT_NEAR(y[0][1][0][6].item<float>(), -std::sin(0.01), 1e-7);
  EXPECT_NEAR(y[0][1][0][7].item<float>(), std::cos(0.01), 1e-7);
  EXPECT_EQ(y[0][0].abs().sum().item<float>(), 0.0f);
}

TEST(RopeTest, MatchesComplexMultiplicationInDouble) {
  torch::manual_seed(0);
  const int64_t F = 2, H = 3, W = 4, d = 64;
  auto x = torch::randn({2, F * H * W, 3, d});
  auto y = ApplyRope(x, MakeRopeTable(d, F, H, W));
  auto angles = RopeAngles(d, F, H, W).view({F * H * W, 1, d / 2});
  auto rot = torch::polar(torch::ones_like(angles), angles);  // complex128
  auto expected =
      torch::view_as_real(
          torch::view_as_complex(x.to(torch::kDouble).reshape({2, F * H * W, 3, d / 2, 2})) * rot)
          .flatten(3)
          .to(torch::kFloat);
  EXPECT_LT((y - expected).abs().max().item<float>(), 1e-5);
  // The autograd path computes the same values.
  auto xg = x.clone().requires_grad_(true);
  auto yg = ApplyRope(xg, MakeRopeTable(d, F, H, W));
  EXPECT_TRUE(yg.requires_grad());
  EXPECT_TRUE(torch::allclose(yg.detach(), y, 1e-6, 1e-6));
}

TEST(RopeTest, CacheReusesTablesPerGrid) {
  RopeCache cache(64, kRopeMaxPositions);
  auto a = cache.Get(2, 3, 4, torch::kCPU);
  auto b = cache.Get(2, 3, 4, torch::kCPU);
  auto c = cache.Get(2, 4, 3, torch::kCPU);
  EXPECT_EQ(a.cos.data_ptr(), b.cos.data_ptr());
  EXPECT_NE(a.cos.data_ptr(), c.cos.data_ptr());
  EXPECT_EQ(a.cos.scalar_type(), torch::kFloat);
  EXPECT_EQ(a.cos.sizes(), (std::vector<int64_t>{24, 1, 32}));
  EXPECT_THROW(MakeRopeTable(64, 1, 1025, 1), c10::Error);
}

}  // namespace
}  // namespace linvideo::core::wan
