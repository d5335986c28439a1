// The fewstep sampler over an explicit timestep list (a distilled model's 4 steps): the shifted
// schedule, exact recovery on a synthetic velocity field, the re-noising rule, seeded
// reproducibility and the errors.
#include "core/sampling/few_step.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "core/params/generation_params.h"
#include "core/sampling/flow_schedule.h"
#include "core/sampling/noise.h"
#include "core/sampling/sampler.h"
#include "gtest/gtest.h"

namespace linvideo::core::sampling {
namespace {

FlowSchedule FourSteps(double shift = 5.0) {
  auto s = MakeTimestepSchedule({1000, 750, 500, 250}, shift);
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

TEST(FewStepScheduleTest, DistillationTimestepsAreWarpedByTheShift) {
  const FlowSchedule s = FourSteps(5.0);
  // sigma = 5t / (1 + 4t) for t = 0.75, 0.5, 0.25; t = 1 is clipped to float32(0.999).
  EXPECT_EQ(s.timesteps, (std::vector<int64_t>{999, 937, 833, 625}));
  ASSERT_EQ(s.sigmas.size(), 5u);
  EXPECT_NEAR(s.sigmas[0], 0.999, 1e-6);
  EXPECT_NEAR(s.sigmas[1], 0.9375, 1e-6);
  EXPECT_NEAR(s.sigmas[2], 2.5 / 3.0, 1e-6);
  EXPECT_NEAR(s.sigmas[3], 0.625, 1e-6);
  EXPECT_EQ(s.sigmas[4], 0.0);
  // Shift 1 leaves the list as it is (t / 1000).
  auto plain = MakeTimestepSchedule({1000, 750, 500, 250}, 1.0);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->timesteps, (std::vector<int64_t>{999, 750, 500, 250}));
}

TEST(FewStepScheduleTest, BadListsAreRefusedWithWhatIsAllowed) {
  for (const std::vector<int64_t>& bad : std::vector<std::vector<int64_t>>{
           {}, {1000, 1000}, {250, 500}, {1001, 500}, {500, 0}, {500, -3}}) {
    auto s = MakeTimestepSchedule(bad, 5.0);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(bad.empty() ? "1..1000" : "strictly decreasing"),
              std::string::npos)
        << s.status();
  }
  EXPECT_FALSE(MakeTimestepSchedule({1000, 500}, 0.0).ok());
  // A huge shift maps 1000 and 999 to the same clipped sigma.
  auto repeated = MakeTimestepSchedule({1000, 999}, 1e6);
  ASSERT_FALSE(repeated.ok());
  EXPECT_NE(repeated.status().message().find("repeated sigmas"), std::string::npos);
}

TEST(FewStepScheduleTest, EvenlySpacedListForModelsWithoutOne) {
  params::GenerationParams p;
  params::ModelLimits open;
  p.steps = 4;
  EXPECT_EQ(params::FewStepTimesteps(p, open), (std::vector<int64_t>{1000, 750, 500, 250}));
  p.steps = 3;
  EXPECT_EQ(params::FewStepTimesteps(p, open), (std::vector<int64_t>{1000, 667, 333}));
  params::ModelLimits distilled;
  ASSERT_TRUE(params::DeclareSampler("fewstep", {900, 600, 300}, distilled).ok());
  EXPECT_EQ(params::FewStepTimesteps(p, distilled), (std::vector<int64_t>{900, 600, 300}));
  p.sampler = params::SamplerKind::kFewStep;
  p.shift = 5.0;
  auto s = MakeRequestSchedule(p, distilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->steps(), 3);
  p.sampler = params::SamplerKind::kUniPC;
  p.steps = 7;
  auto u = MakeRequestSchedule(p, open);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->steps(), 7);
}

// Data that is one point c: the exact velocity is v = (x − c)/σ, so x̂₀ = c at every step. Each
// intermediate sample must be (1 − σ_k)c + σ_k ε_k with ε_k the seeded re-noising draw, and the
// last step returns c itself.
TEST(FewStepSamplerTest, PointMassIsRecoveredAndEveryStepFollowsTheRenoisingRule) {
  const std::vector<int64_t> shape = {1, 4, 3, 5, 6};
  const torch::Tensor c = SeededNoise(shape, 77).mul(0.5).add(0.25);
  const uint64_t seed = 12345;
  const FlowSchedule s = FourSteps();
  FewStepState state;
  state.seed = seed;
  torch::Tensor x = SeededNoise(shape, seed);
  for (int64_t k = 0; k < s.steps(); ++k) {
    const torch::Tensor v = (x - c) / s.sigmas[k];
    auto next = FewStepStep(s, state, k, v, x);
    ASSERT_TRUE(next.ok()) << next.status();
    x = *next;
    if (k + 1 < s.steps()) {
      const double sig = s.sigmas[k + 1];
      const torch::Tensor expected =
          c * (1.0 - sig) + SeededNoise(shape, FewStepNoiseSeed(seed, k + 1)) * sig;
      EXPECT_LT((x - expected).abs().max().item<double>(), 1e-5) << "step " << k;
    }
  }
  EXPECT_LT((x - c).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(state.next_step, 4);
}

// A velocity field whose x̂₀ depends on x (Gaussian data N(0, s²) per element): the output depends
// on the re-noising draws, so it shows the seed is honoured and nothing else leaks in.
torch::Tensor GaussianDataVelocity(const torch::Tensor& x, double sigma) {
  const double s2 = 0.09;  // data variance
  // E[x0 | x] = (1 − σ)s² / ((1 − σ)²s² + σ²) · x;  v = (x − E[x0|x]) / σ
  const double a = (1.0 - sigma) * s2 / ((1.0 - sigma) * (1.0 - sigma) * s2 + sigma * sigma);
  return (x - x.mul(a)) / sigma;
}

torch::Tensor RunFewStep(uint64_t seed, const std::vector<int64_t>& shape) {
  const FlowSchedule s = FourSteps();
  int64_t i = 0;
  auto out = Sample(
      s, params::SamplerKind::kFewStep, SeededNoise(shape, seed),
      [&](const torch::Tensor& x, int64_t t) -> torch::Tensor {
        EXPECT_EQ(t, s.timesteps[i]);
        return GaussianDataVelocity(x, s.sigmas[i++]);
      },
      {}, seed);
  EXPECT_TRUE(out.ok()) << out.status();
  return *out;
}

TEST(FewStepSamplerTest, SeededAndReproducible) {
  const std::vector<int64_t> shape = {1, 2, 4, 4, 4};
  const torch::Tensor a = RunFewStep(5, shape), b = RunFewStep(5, shape),
                      other = RunFewStep(6, shape);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_GT((a - other).abs().max().item<double>(), 1e-3);
  // The spread follows the re-noising rule with fresh independent noise: for x ~ N(0, V_k) at
  // sigma_k the prediction is a_k·x, and the next state has variance
  // V_{k+1} = (1 − σ_{k+1})²·a_k²·V_k + σ_{k+1}² (V_0 = 1, pure noise); the output's is a²V at
  // the last step. (Below the data's 0.09: an exact denoiser's mean is not a sample — what
  // distillation trains the generator to undo.)
  const FlowSchedule s = FourSteps();
  double var = 1.0;
  for (int64_t k = 0; k < s.steps(); ++k) {
    const double sig = s.sigmas[k], next = s.sigmas[k + 1];
    const double a = (1.0 - sig) * 0.09 / ((1.0 - sig) * (1.0 - sig) * 0.09 + sig * sig);
    var = next > 0 ? (1.0 - next) * (1.0 - next) * a * a * var + next * next : a * a * var;
  }
  const torch::Tensor big = RunFewStep(9, {1, 16, 8, 16, 16});
  EXPECT_NEAR(big.std().item<double>(), std::sqrt(var), 0.03 * std::sqrt(var));
  // The re-noising streams of neighbouring seeds and steps are all distinct.
  std::set<uint64_t> seeds;
  for (uint64_t sd = 0; sd < 8; ++sd) {
    for (int64_t k = 1; k < 5; ++k) seeds.insert(FewStepNoiseSeed(sd, k));
  }
  EXPECT_EQ(seeds.size(), 32u);
}

TEST(FewStepSamplerTest, OutOfOrderStepsAndBadShapesAreRefused) {
  const FlowSchedule s = FourSteps();
  FewStepState state;
  const torch::Tensor x = torch::zeros({2, 3});
  auto skipped = FewStepStep(s, state, 1, x, x);
  EXPECT_EQ(skipped.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(skipped.status().message().find("expects step 0"), std::string::npos);
  EXPECT_EQ(FewStepStep(s, state, 4, x, x).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FewStepStep(s, state, 0, torch::zeros({3, 2}), x).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(state.next_step, 0);
  // bf16 samples stay bf16 (the arithmetic is float32).
  auto half = FewStepStep(s, state, 0, x.to(torch::kBFloat16), x.to(torch::kBFloat16));
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->scalar_type(), torch::kBFloat16);
}

}  // namespace
}  // namespace linvideo::core::sampling
