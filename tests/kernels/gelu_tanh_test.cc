// CPU GELU(tanh) kernel: forward and backward against the formula in double, against LibTorch's
// at::gelu / at::gelu_backward, bf16 rounding, autograd (first and second order), in-place and
// non-contiguous inputs, fallbacks, special values, thread split.

#include "kernels/gelu_tanh.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>

namespace linvideo::kernels {
namespace {

// 0.5·x·(1 + tanh(u)) and its derivative, in double, with 0.5·(1 + tanh(u)) written as
// sigmoid(2u) so that the reference itself does not cancel to 0 in the tail (in double,
// 1 + tanh(u) is exactly 0 once u < −19).
at::Tensor ExactGelu(const at::Tensor& x) {
  auto d = x.to(at::kDouble);
  auto u = std::sqrt(2.0 / M_PI) * (d + 0.044715 * d.pow(3));
  return d * at::sigmoid(2 * u);
}

at::Tensor ExactGeluGrad(const at::Tensor& x) {
  auto d = x.to(at::kDouble);
  auto u = std::sqrt(2.0 / M_PI) * (d + 0.044715 * d.pow(3));
  auto du = std::sqrt(2.0 / M_PI) * (1 + 3 * 0.044715 * d.pow(2));
  auto s = at::sigmoid(2 * u);
  return s + 2 * d * s * at::sigmoid(-2 * u) * du;
}

// Every x in [-12, 12] at step 1/512 plus normal samples of std 3: covers the tails, the region
// around 0 and the bf16-representable neighbourhood of both.
at::Tensor Inputs() {
  at::manual_seed(1);
  return at::cat({at::arange(-12.0, 12.0, 1.0 / 512, at::kFloat), 3 * at::randn({50000})});
}

// |a − b| ≤ rel·|b| + abs, element-wise, in double.
double MaxExcess(const at::Tensor& a, const at::Tensor& b, double rel, double abs) {
  auto ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  return ((ad - bd).abs() - (rel * bd.abs() + abs)).max().item<double>();
}

TEST(GeluTanhTest, Fp32ForwardMatchesTheFormulaToAFewUlp) {
  auto x = Inputs();
  auto y = GeluTanh(x);
  ASSERT_EQ(y.scalar_type(), at::kFloat);
  ASSERT_EQ(y.sizes(), x.sizes());
  // ~4 ulp relative where |u| is small. In the tail the result is e^(−2|u|)·x, and rounding u
  // itself (a few ulp of |2u|, unavoidable in fp32) moves e^(−2|u|) by that many ulp times |2u|:
  // the tolerance grows with |2u| accordingly (1e-5 relative at y ~ 1e-29).
  auto xd = x.to(at::kDouble);
  auto two_u = (2 * std::sqrt(2.0 / M_PI) * (xd + 0.044715 * xd.pow(3))).abs();
  auto exact = ExactGelu(x);
  auto excess = (y.to(at::kDouble) - exact).abs() - 5e-7 * (1 + two_u) * exact.abs() -
                1e-36;  // e^(−2|u|) < e^−87 is 0
  EXPECT_LE(excess.max().item<double>(), 0.0);
  // And LibTorch's own kernel agrees to its own accuracy (its 1 + tanh(u) cancels for x << 0).
  EXPECT_LE(MaxExcess(y, at::gelu(x, "tanh"), 1e-6, 5e-7), 0.0);
}

TEST(GeluTanhTest, Fp32BackwardMatchesTheDerivative) {
  auto x = Inputs();
  at::manual_seed(2);
  auto g = at::randn_like(x);
  auto dx = GeluTanhBackward(g, x);
  auto exact = g.to(at::kDouble) * ExactGeluGrad(x);
  // Relative to the gradient's scale |g|: gelu' crosses 0 near x = −0.75, where its two terms
  // cancel.
  EXPECT_LE(MaxExcess(dx, exact, 1e-6, 1e-6 * g.abs().max().item<double>()), 0.0);
  EXPECT_LE(MaxExcess(dx, at::gelu_backward(g, x, "tanh"), 1e-6, 1e-5), 0.0);
}

TEST(GeluTanhTest, Bf16IsTheFp32ResultRoundedOnce) {
  auto x = Inputs().to(at::kBFloat16);
  auto y = GeluTanh(x);
  ASSERT_EQ(y.scalar_type(), at::kBFloat16);
  // Rounding the fp32 kernel's output of the same (exactly widened) inputs gives the same bits.
  auto via_fp32 = GeluTanh(x.to(at::kFloat)).to(at::kBFloat16);
  EXPECT_TRUE(at::equal(y, via_fp32));
  // Within one bf16 rounding (2^-8 relative) of the exact value.
  EXPECT_LE(MaxExcess(y, ExactGelu(x.to(at::kFloat)), 1.0 / 250, 1e-30), 0.0);

  at::manual_seed(3);
  auto g = at::randn(x.sizes()).to(at::kBFloat16);
  auto dx = GeluTanhBackward(g, x);
  ASSERT_EQ(dx.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(
      at::equal(dx, GeluTanhBackward(g.to(at::kFloat), x.to(at::kFloat)).to(at::kBFloat16)));
}

TEST(GeluTanhTest, AutogradFirstAndSecondOrderMatchLibTorch) {
  at::manual_seed(4);
  auto base = 3 * at::randn({64, 33});
  auto x1 = base.clone().requires_grad_(true);
  auto x2 = base.clone().requires_grad_(true);
  auto y1 = GeluTanh(x1);
  auto y2 = at::gelu(x2, "tanh");
  ASSERT_TRUE(y1.requires_grad());
  auto w = at::randn_like(base);
  auto [g1] = std::tuple{torch::autograd::grad({(y1 * w).sum()}, {x1}, {}, true, true)[0]};
  auto [g2] = std::tuple{torch::autograd::grad({(y2 * w).sum()}, {x2}, {}, true, true)[0]};
  EXPECT_LE(MaxExcess(g1, g2, 5e-6, 1e-6), 0.0);
  // Second order (create_graph=true above): d/dx Σ g(x)·v.
  auto v = at::randn_like(base);
  auto h1 = torch::autograd::grad({(g1 * v).sum()}, {x1})[0];
  auto h2 = torch::autograd::grad({(g2 * v).sum()}, {x2})[0];
  EXPECT_LE(MaxExcess(h1, h2, 1e-5, 1e-6), 0.0);
  EXPECT_GT(h1.abs().sum().item<double>(), 0.0);
}

TEST(GeluTanhTest, GradientsThroughABf16GraphMatchTheKernel) {
  at::manual_seed(5);
  auto x = (2 * at::randn({128, 64})).to(at::kBFloat16).requires_grad_(true);
  auto y = GeluTanh(x);
  auto g = at::randn({128, 64}).to(at::kBFloat16);
  y.backward(g);
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::equal(x.grad(), GeluTanhBackward(g, x.detach())));
}

TEST(GeluTanhTest, InPlaceAndNonContiguousInputsGiveTheSameValues) {
  at::manual_seed(6);
  auto base = 3 * at::randn({96, 80});
  auto expected = GeluTanh(base);
  auto inplace = base.clone();
  GeluTanh_(inplace);
  EXPECT_TRUE(at::equal(inplace, expected));

  auto t = base.t();  // non-contiguous view
  ASSERT_FALSE(t.is_contiguous());
  EXPECT_TRUE(at::equal(GeluTanh(t), expected.t()));
  auto holder = base.clone();
  auto view = holder.t();
  GeluTanh_(view);  // writes through the view
  EXPECT_TRUE(at::equal(holder, expected));

  auto g = at::randn({80, 96});
  EXPECT_TRUE(at::equal(GeluTanhBackward(g, t), GeluTanhBackward(g.contiguous(), t.contiguous())));
}

TEST(GeluTanhTest, InPlaceRefusesATensorThatRequiresGrad) {
  auto x = at::randn({4}).requires_grad_(true);
  EXPECT_THROW(GeluTanh_(x), c10::Error);
}

TEST(GeluTanhTest, OtherDtypesFallBackToLibTorch) {
  auto x = at::linspace(-5, 5, 101, at::kDouble);
  EXPECT_FALSE(GeluTanhCpuApplies(x));
  EXPECT_TRUE(GeluTanhCpuApplies(x.to(at::kFloat)));
  EXPECT_TRUE(GeluTanhCpuApplies(x.to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(GeluTanh(x), at::gelu(x, "tanh")));
  auto inplace = x.clone();
  GeluTanh_(inplace);
  EXPECT_TRUE(at::equal(inplace, at::gelu(x, "tanh")));
  auto g = at::ones_like(x);
  EXPECT_TRUE(at::equal(GeluTanhBackward(g, x), at::gelu_backward(g, x, "tanh")));
  // Mixed dtypes of grad and x fall back too, rather than reading one as the other.
  auto xf = x.to(at::kFloat);
  EXPECT_TRUE(at::equal(GeluTanhBackward(g, xf), at::gelu_backward(g, xf, "tanh")));
  EXPECT_THROW(GeluTanhBackward(at::ones({3}), at::ones({4})), c10::Error);
}

TEST(GeluTanhTest, SpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto x = at::tensor({nan, 0.0f, -0.0f, 1e4f, -1e4f, 87.0f, -87.0f, 1e-30f});
  auto y = GeluTanh(x);
  EXPECT_TRUE(std::isnan(y[0].item<float>()));
  EXPECT_EQ(y[1].item<float>(), 0.0f);
  EXPECT_EQ(y[2].item<float>(), 0.0f);
  EXPECT_EQ(y[3].item<float>(), 1e4f);
  EXPECT_LE(std::fabs(y[4].item<float>()), 1e-30f);
  EXPECT_EQ(y[5].item<float>(), 87.0f);
  EXPECT_LE(std::fabs(y[6].item<float>()), 1e-30f);
  EXPECT_NEAR(y[7].item<float>(), 0.5e-30f, 1e-36f);
  auto yb = GeluTanh(x.to(at::kBFloat16));
  EXPECT_TRUE(std::isnan(yb[0].item<float>()));
  auto dy = GeluTanhBackward(at::ones_like(x), x);
  EXPECT_TRUE(std::isnan(dy[0].item<float>()));
  EXPECT_FLOAT_EQ(dy[1].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(dy[3].item<float>(), 1.0f);
  EXPECT_LE(std::fabs(dy[4].item<float>()), 1e-30f);
  EXPECT_EQ(GeluTanh(at::empty({0})).numel(), 0);
}

TEST(GeluTanhTest, ThreadSplitDoesNotChangeBits) {
  const int threads = at::get_num_threads();
  at::manual_seed(7);
  auto x = 3 * at::randn({100003});  // not a multiple of any grain or vector width
  auto g = at::randn({100003});
  at::set_num_threads(1);
  auto y1 = GeluTanh(x), d1 = GeluTanhBackward(g, x);
  at::set_num_threads(2);
  auto y2 = GeluTanh(x), d2 = GeluTanhBackward(g, x);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(y1, y2));
  EXPECT_TRUE(at::equal(d1, d2));
}

}  // namespace
}  // namespace linvideo::kernels
