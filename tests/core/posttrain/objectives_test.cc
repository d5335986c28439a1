// ADM: the surrogate's autograd gradient equals the formula ((1 − t)/t)(u_teacher − u_student)
// computed explicitly, through x̂ and on to the parameters that produced it; the MSE baseline.
#include "core/posttrain/objectives.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace linvideo::core::posttrain {
namespace {

TEST(AdmTest, GradientIsTheScoreDifferenceFromVelocities) {
  torch::manual_seed(0);
  const int64_t b = 3;
  auto x_hat = torch::randn({b, 2, 4}).requires_grad_(true);
  auto u_t = torch::randn({b, 2, 4});
  auto u_s = torch::randn({b, 2, 4}).requires_grad_(true);  // must be treated as a constant
  auto t = torch::tensor({0.25f, 0.5f, 0.9f});
  AdmTerms terms = AdmLoss(x_hat, u_t, u_s, t);
  terms.surrogate.backward();
  // Explicit: s_t - ŝ_t = -((1 - t)/t)(u_T - u_S); ∂L/∂x̂ = -(s_t - ŝ_t) / numel.
  auto w = ((1 - t) / t).view({b, 1, 1});
  auto score_gap = -w * (u_t - u_s.detach());
  auto expected = -score_gap / static_cast<double>(x_hat.numel());
  EXPECT_TRUE(torch::allclose(x_hat.grad(), expected, 1e-6, 1e-7));
  EXPECT_FALSE(u_s.grad().defined());  // stop-gradient through the student's score
  EXPECT_NEAR(terms.velocity_gap.item<float>(), (u_t - u_s).pow(2).mean().item<float>(), 1e-6);

  // Through a student: x̂ = θ·z, so ∂L/∂θ = Σ (∂L/∂x̂)·z.
  auto theta = torch::full({}, 0.7f).requires_grad_(true);
  auto z = torch::randn({b, 2, 4});
  AdmLoss(theta * z, u_t, u_s.detach(), t).surrogate.backward();
  EXPECT_NEAR(theta.grad().item<float>(), (expected * z).sum().item<float>(), 1e-6);
}

TEST(AdmTest, SmallTimestepsAreClampedAndShapesChecked) {
  auto x = torch::ones({1, 2}).requires_grad_(true);
  AdmLoss(x, torch::ones({1, 2}), torch::zeros({1, 2}), torch::tensor({0.0f})).surrogate.backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
  EXPECT_NEAR(x.grad()[0][0].item<float>(), (1 - kAdmMinT) / kAdmMinT / 2, 1e-2);
  EXPECT_THROW(AdmLoss(x, torch::ones({1, 3}), torch::zeros({1, 2}), torch::tensor({0.5f})),
               c10::Error);
  EXPECT_THROW(AdmLoss(x, torch::ones({1, 2}), torch::zeros({1, 2}), torch::tensor({0.5f, 0.5f})),
               c10::Error);
}

TEST(AdmTest, VelocityMseIsTheMeanSquaredGapWithTheTeacherConstant) {
  auto u_s = torch::tensor({1.0f, 2.0f}).requires_grad_(true);
  auto u_t = torch::tensor({0.0f, 4.0f}).requires_grad_(true);
  auto loss = VelocityMseLoss(u_s, u_t);
  EXPECT_FLOAT_EQ(loss.item<float>(), (1.0f + 4.0f) / 2);
  loss.backward();
  EXPECT_TRUE(torch::allclose(u_s.grad(), torch::tensor({1.0f, -2.0f})));
  EXPECT_FALSE(u_t.grad().defined());
}

}  // namespace
}  // namespace linvideo::core::posttrain
