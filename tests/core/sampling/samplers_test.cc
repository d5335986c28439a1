// UniPC and Euler on synthetic velocity fields with known solutions.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/sampling/euler.h"
#include "core/sampling/flow_schedule.h"
#include "core/sampling/sampler.h"
#include "core/sampling/unipc.h"
#include "gtest/gtest.h"

namespace linvideo::core::sampling {
namespace {

FlowSchedule Schedule(int64_t steps, double shift) {
  auto s = MakeFlowSchedule(steps, shift);
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

torch::Tensor Randn(std::vector<int64_t> shape, uint64_t seed, at::ScalarType dtype) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  return at::randn(shape, g, at::TensorOptions().dtype(dtype));
}

// Exact velocity when the data is the single point x0: along x = (1 - sigma) x0 + sigma eps,
// v = eps - x0 = (x - x0) / sigma. Every consistent sampler must end exactly at x0.
TEST(SamplersTest, SinglePointDataIsRecoveredExactly) {
  const torch::Tensor x0 = Randn({2, 3, 4, 5}, 1, at::kFloat);
  const torch::Tensor x_T = Randn({2, 3, 4, 5}, 2, at::kFloat);
  for (SamplerKind kind : {SamplerKind::kUniPC, SamplerKind::kEuler}) {
    for (auto [steps, shift] :
         std::vector<std::pair<int64_t, double>>{{4, 5.0}, {10, 3.0}, {50, 5.0}}) {
      const FlowSchedule s = Schedule(steps, shift);
      int64_t i = 0;
      auto denoise = [&](const torch::Tensor& x, int64_t t) -> torch::Tensor {
        EXPECT_EQ(t, s.timesteps[i]);
        return (x - x0) / s.sigmas[i++];
      };
      auto out = Sample(s, kind, x_T, denoise);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(i, steps);
      const double err = (*out - x0).abs().max().item<double>();
      EXPECT_LT(err, 2e-5) << SamplerKindName(kind) << " steps " << steps;
    }
  }
}

// Gaussian data x0 ~ N(mu, s^2) per element: the probability-flow velocity is linear in x,
//   v(x, sigma) = (sigma - (1 - sigma) s^2) / V * (x - m) - mu,  m = (1 - sigma) mu,
//   V = (1 - sigma)^2 s^2 + sigma^2,
// and the exact flow maps x at sigma_0 to mu + s * (x - m(sigma_0)) / sqrt(V(sigma_0)) at sigma =
// 0.
struct GaussianField {
  double mu = 0.7, s = 0.4;
  double Mean(double sigma) const { return (1 - sigma) * mu; }
  double Var(double sigma) const { return (1 - sigma) * (1 - sigma) * s * s + sigma * sigma; }
  torch::Tensor Velocity(const torch::Tensor& x, double sigma) const {
    return (x - Mean(sigma)) * ((sigma - (1 - sigma) * s * s) / Var(sigma)) - mu;
  }
  torch::Tensor Solution(const torch::Tensor& x_start, double sigma_start) const {
    return (x_start - Mean(sigma_start)) * (s / std::sqrt(Var(sigma_start))) + mu;
  }
};

double GaussianError(SamplerKind kind, int64_t steps, double shift) {
  const GaussianField field;
  const FlowSchedule s = Schedule(steps, shift);
  const torch::Tensor x_T = Randn({64}, 3, at::kDouble);
  UniPCOptions options;
  options.float32_coefficients = false;  // keep the float64 test free of float32 rounding
  SamplerState state = MakeSamplerState(kind, options);
  torch::Tensor x = x_T;
  for (int64_t i = 0; i < steps; ++i) {
    auto next = SamplerStep(s, state, i, field.Velocity(x, s.sigmas[i]), x);
    EXPECT_TRUE(next.ok()) << next.status();
    x = *next;
  }
  return (x - field.Solution(x_T, s.sigmas[0])).abs().max().item<double>();
}

// Observed order p from errors at N and 8N steps: e(N) / e(8N) = 8^p. The schedules start very
// close to sigma = 1, where the steps in lambda are large, so the asymptotic regime (measured here:
// UniPC ratios ~4 per doubling at shift 1 from N = 32 on) is only reached with enough steps, and
// later for larger shifts.
TEST(SamplersTest, ConvergenceOrderOnGaussianData) {
  for (auto [shift, n] : std::vector<std::pair<double, int64_t>>{{1.0, 32}, {3.0, 128}}) {
    double e_unipc[2], e_euler[2];
    for (int k = 0; k < 2; ++k) {
      e_unipc[k] = GaussianError(SamplerKind::kUniPC, n << (3 * k), shift);
      e_euler[k] = GaussianError(SamplerKind::kEuler, n << (3 * k), shift);
      EXPECT_LT(e_unipc[k], e_euler[k]);
    }
    const double p_unipc = std::log2(e_unipc[0] / e_unipc[1]) / 3;
    const double p_euler = std::log2(e_euler[0] / e_euler[1]) / 3;
    std::printf(
        "shift %.0f, N %lld -> %lld: UniPC %.3e -> %.3e (order %.2f), Euler %.3e -> %.3e "
        "(order %.2f)\n",
        shift, static_cast<long long>(n), static_cast<long long>(n * 8), e_unipc[0], e_unipc[1],
        p_unipc, e_euler[0], e_euler[1], p_euler);
    EXPECT_GT(p_unipc, 1.75) << "UniPC bh2 order 2 must converge at second order";
    EXPECT_GT(p_euler, 0.9);
    EXPECT_LT(p_euler, 1.1) << "Euler is first order";
  }
}

// The first UniPC step (order 1, no corrector) is the DDIM step, which for the linear flow equals
// the Euler step: x1 = (1 - s1) x0 + s1 eps with x0 = x - s0 v, eps = x + (1 - s0) v.
TEST(SamplersTest, FirstUniPCStepEqualsEulerStep) {
  const FlowSchedule s = Schedule(10, 5.0);
  const torch::Tensor x = Randn({3, 7}, 4, at::kFloat);
  const torch::Tensor v = Randn({3, 7}, 5, at::kFloat);
  UniPCState us;
  EulerState es;
  auto a = UniPCStep(s, us, 0, v, x);
  auto b = EulerStep(s, es, 0, v, x);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(torch::allclose(*a, *b, 1e-5, 1e-5));
  EXPECT_EQ(us.next_step, 1);
  EXPECT_EQ(es.next_step, 1);
}

// Two requests with different schedules, data and lengths, stepped interleaved (and with their
// model outputs computed as one batch) give exactly what each gets alone.
TEST(SamplersTest, UniPCStatesAreIndependent) {
  const GaussianField field;
  const FlowSchedule sa = Schedule(12, 5.0), sb = Schedule(7, 3.0);
  const torch::Tensor xa0 = Randn({4, 6}, 6, at::kFloat), xb0 = Randn({4, 6}, 7, at::kFloat);
  auto alone = [&](const FlowSchedule& s, torch::Tensor x) {
    UniPCState st;
    for (int64_t i = 0; i < s.steps(); ++i)
      x = *UniPCStep(s, st, i, field.Velocity(x, s.sigmas[i]), x);
    return x;
  };
  const torch::Tensor ra = alone(sa, xa0), rb = alone(sb, xb0);

  UniPCState a, b;
  torch::Tensor xa = xa0, xb = xb0;
  for (int64_t i = 0; i < sa.steps(); ++i) {
    // Request b starts 3 steps later and finishes first.
    const int64_t j = i - 3;
    const bool b_active = j >= 0 && j < sb.steps();
    torch::Tensor batch = b_active ? torch::stack({xa, xb}) : xa.unsqueeze(0);  // [n, 4, 6]
    std::vector<torch::Tensor> vs = {field.Velocity(batch[0], sa.sigmas[i])};
    if (b_active) vs.push_back(field.Velocity(batch[1], sb.sigmas[j]));
    const torch::Tensor v = torch::stack(vs);  // [n, 4, 6], one "model" batch
    auto na = UniPCStep(sa, a, i, v[0], batch[0]);
    ASSERT_TRUE(na.ok()) << na.status();
    xa = *na;
    if (b_active) {
      auto nb = UniPCStep(sb, b, j, v[1], batch[1]);
      ASSERT_TRUE(nb.ok()) << nb.status();
      xb = *nb;
    }
  }
  EXPECT_TRUE(torch::equal(xa, ra));
  EXPECT_TRUE(torch::equal(xb, rb));
}

TEST(SamplersTest, StepsMustBeInOrderAndFailuresLeaveStateUntouched) {
  const FlowSchedule s = Schedule(5, 5.0);
  const torch::Tensor x = Randn({8}, 8, at::kFloat);
  UniPCState st;
  EXPECT_EQ(UniPCStep(s, st, 1, x, x).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(UniPCStep(s, st, 5, x, x).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UniPCStep(s, st, 0, Randn({9}, 1, at::kFloat), x).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.next_step, 0);
  EXPECT_TRUE(st.x0_history.empty());
  ASSERT_TRUE(UniPCStep(s, st, 0, x, x).ok());
  EXPECT_EQ(UniPCStep(s, st, 0, x, x).status().code(), absl::StatusCode::kFailedPrecondition);
  UniPCOptions bad;
  bad.order = 4;
  EXPECT_EQ(UniPCStep(s, st, 1, x, x, bad).status().code(), absl::StatusCode::kInvalidArgument);
  EulerState es;
  EXPECT_EQ(EulerStep(s, es, 2, x, x).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SamplersTest, SampleReportsDenoiseErrorsWithStep) {
  const FlowSchedule s = Schedule(4, 5.0);
  int calls = 0;
  DenoiseFn failing = [&](const torch::Tensor& x, int64_t) -> absl::StatusOr<torch::Tensor> {
    if (++calls == 3) return absl::ResourceExhaustedError("out of memory");
    return torch::zeros_like(x);
  };
  auto out = Sample(s, SamplerKind::kUniPC, torch::ones({2}), failing);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(out.status().message().find("step 2"), std::string::npos) << out.status();
  EXPECT_EQ(ParseSamplerKind("UniPC").value(), SamplerKind::kUniPC);
  EXPECT_EQ(ParseSamplerKind("euler").value(), SamplerKind::kEuler);
  EXPECT_EQ(ParseSamplerKind("ddim").status().code(), absl::StatusCode::kInvalidArgument);
}

// Higher orders and bh1 also reach the single-point data exactly and beat Euler on Gaussian data.
TEST(SamplersTest, OtherUniPCVariantsAreConsistent) {
  const torch::Tensor x0 = Randn({16}, 9, at::kDouble), x_T = Randn({16}, 10, at::kDouble);
  for (int order : {1, 2, 3}) {
    for (UniPCVariant variant : {UniPCVariant::kBh1, UniPCVariant::kBh2}) {
      UniPCOptions o;
      o.order = order;
      o.variant = variant;
      o.float32_coefficients = false;
      const FlowSchedule s = Schedule(12, 5.0);
      int64_t i = 0;
      auto out = Sample(
          s, SamplerKind::kUniPC, x_T,
          [&](const torch::Tensor& x, int64_t) -> torch::Tensor {
            return (x - x0) / s.sigmas[i++];
          },
          o);
      ASSERT_TRUE(out.ok());
      EXPECT_LT((*out - x0).abs().max().item<double>(), 1e-10) << order;
    }
  }
}

}  // namespace
}  // namespace linvideo::core::sampling
