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

TEST(AdmTest, SampleWeightScalesEachSamplesGradient) {
  auto x_hat = torch::ones({2, 3}).requires_grad_(true);
  auto u_t = torch::ones({2, 3});
  auto u_s = torch::zeros({2, 3});
  auto t = torch::tensor({0.5f, 0.5f});  // w = 1
  AdmLoss(x_hat, u_t, u_s, t, torch::tensor({2.0f, 0.5f})).surrogate.backward();
  EXPECT_NEAR(x_hat.grad()[0][0].item<float>(), 2.0f / 6, 1e-6);
  EXPECT_NEAR(x_hat.grad()[1][0].item<float>(), 0.5f / 6, 1e-6);
  EXPECT_THROW(AdmLoss(x_hat, u_t, u_s, t, torch::ones({3})), c10::Error);
}

TEST(AdmTest, UniformTimeWeightsEqualiseTheStepsAndKeepTheMean) {
  // 3 steps: σ 1 -> 0.8 -> 0.5 -> 0; the last step (σ_{i+1} = 0) has no ADM point.
  const std::vector<double> sigmas = {1.0, 0.8, 0.5, 0.0};
  const std::vector<double> paper = AdmTimeWeights(sigmas, AdmWeighting::kPaper);
  ASSERT_EQ(paper.size(), 2u);
  EXPECT_EQ(paper, std::vector<double>({1.0, 1.0}));
  // Factor |Δσ|·(1 − σ')/σ': 0.2·0.25 = 0.05 and 0.3·1 = 0.3, mean 0.175.
  const std::vector<double> uniform = AdmTimeWeights(sigmas, AdmWeighting::kUniform);
  ASSERT_EQ(uniform.size(), 2u);
  EXPECT_NEAR(uniform[0], 0.175 / 0.05, 1e-9);
  EXPECT_NEAR(uniform[1], 0.175 / 0.3, 1e-9);
  EXPECT_NEAR(uniform[0] * 0.05, uniform[1] * 0.3, 1e-9);  // every step weighs the same
  EXPECT_NEAR((uniform[0] * 0.05 + uniform[1] * 0.3) / 2, 0.175, 1e-9);  // mean kept
  EXPECT_THROW(AdmTimeWeights({1.0}, AdmWeighting::kUniform), c10::Error);
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
