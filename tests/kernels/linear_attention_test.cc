// Linear attention kernels on CPU: reference vs the explicit quadratic form, chunked CPU path vs
// reference, autograd vs finite differences, dispatch.

#include "kernels/linear_attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <tuple>

#include "kernels/linear_attention_selfcheck.h"

namespace linvideo::kernels {
namespace {

// φ(x) computed independently: explicit max-subtracted exponentials, one head at a time.
at::Tensor NaiveFeatureMap(const at::Tensor& x, const at::Tensor& w) {
  auto z = at::matmul(x.unsqueeze(-2), w).squeeze(-2);  // [B, N, H, D]
  auto ep = (z - std::get<0>(z.max(-1, true))).exp();
  auto en = (std::get<0>(z.min(-1, true)) - z).exp();
  return at::cat({ep / ep.sum(-1, true), en / en.sum(-1, true)}, -1);  // [B, N, H, 2D]
}

// o_i = Σ_j (φ(q_i)·φ(k_j)) v_j / Σ_j φ(q_i)·φ(k_j), with the N×N matrix materialised.
at::Tensor QuadraticForm(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& wq, const at::Tensor& wk) {
  auto pq = NaiveFeatureMap(q, wq), pk = NaiveFeatureMap(k, wk);
  auto a = at::einsum("bihf,bjhf->bhij", {pq, pk});  // [B, H, Nq, Nk]
  auto o = at::einsum("bhij,bjhd->bihd", {a, v}) /
           a.sum(-1).permute({0, 2, 1}).unsqueeze(-1);  // [B, Nq, H, D]
  return o;
}

struct Inputs {
  at::Tensor q, k, v, wq, wk;
};

Inputs MakeInputs(int64_t b, int64_t nq, int64_t nk, int64_t h, int64_t d,
                  at::ScalarType dtype = at::kFloat) {
  Inputs in;
  in.q = at::randn({b, nq, h, d}, at::kDouble).to(dtype);
  in.k = at::randn({b, nk, h, d}, at::kDouble).to(dtype);
  in.v = at::randn({b, nk, h, d}, at::kDouble).to(dtype);
  auto wdt = dtype == at::kDouble ? at::kDouble : at::kFloat;
  auto eye = at::eye(d, wdt).expand({h, d, d});
  in.wq = eye + 0.5 * at::randn({h, d, d}, wdt) / std::sqrt(double(d));
  in.wk = eye + 0.5 * at::randn({h, d, d}, wdt) / std::sqrt(double(d));
  return in;
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(LinearAttentionTest, ReferenceAndCpuMatchQuadraticFormFp32) {
  at::manual_seed(0);
  auto in = MakeInputs(2, 37, 29, 3, 16);
  auto quad = QuadraticForm(in.q.to(at::kDouble), in.k.to(at::kDouble), in.v.to(at::kDouble),
                            in.wq.to(at::kDouble), in.wk.to(at::kDouble));
  auto ref = LinearAttentionReference(in.q, in.k, in.v, in.wq, in.wk);
  auto cpu =
      LinearAttentionComposite(in.q, in.k, in.v, in.wq, in.wk, kLinearAttentionEps, /*chunk=*/8);
  ASSERT_EQ(ref.sizes(), in.q.sizes());
  EXPECT_LT(MaxAbsDiff(ref, quad), 2e-5);
  EXPECT_LT(MaxAbsDiff(cpu, quad), 2e-5);
  // Sanity: the result is not trivially the mean of v (the weights matter).
  EXPECT_GT(MaxAbsDiff(ref, in.v.mean(1, true).expand_as(ref)), 1e-2);
}

TEST(LinearAttentionTest, Bf16MatchesQuadraticFormOfRoundedInputs) {
  at::manual_seed(1);
  auto in = MakeInputs(1, 50, 50, 2, 32, at::kBFloat16);
  auto quad = QuadraticForm(in.q.to(at::kDouble), in.k.to(at::kDouble), in.v.to(at::kDouble),
                            in.wq.to(at::kDouble), in.wk.to(at::kDouble));
  auto ref = LinearAttentionReference(in.q, in.k, in.v, in.wq, in.wk);
  auto cpu = LinearAttentionComposite(in.q, in.k, in.v, in.wq, in.wk);
  EXPECT_EQ(ref.scalar_type(), at::kBFloat16);
  EXPECT_EQ(cpu.scalar_type(), at::kBFloat16);
  // Only the final rounding to bf16 (8 bits of mantissa) separates them: outputs are O(1).
  EXPECT_LT(MaxAbsDiff(ref, quad), 1e-2);
  EXPECT_LT(MaxAbsDiff(cpu, quad), 1e-2);
}

TEST(LinearAttentionTest, CpuPathMatchesReferenceAcrossSizes) {
  at::manual_seed(2);
  for (int64_t n : {1, 5, 255, 1023, 1024, 1025, 2500}) {
    for (int64_t h : {1, 3, 12}) {
      auto in = MakeInputs(1, n, n, h, 64);
      auto ref = LinearAttentionReference(in.q, in.k, in.v, in.wq, in.wk);
      auto cpu = LinearAttentionComposite(in.q, in.k, in.v, in.wq, in.wk);
      EXPECT_LT(MaxAbsDiff(cpu, ref), 1e-5) << "N=" << n << " heads=" << h;
    }
  }
  // Different query/key lengths, batch 2, odd chunk, head_dim 128.
  auto in = MakeInputs(2, 300, 77, 2, 128);
  auto ref = LinearAttentionReference(in.q, in.k, in.v, in.wq, in.wk);
  EXPECT_LT(MaxAbsDiff(LinearAttentionComposite(in.q, in.k, in.v, in.wq, in.wk, 1e-6, 7), ref),
            1e-5);
}

TEST(LinearAttentionTest, NonContiguousInputs) {
  at::manual_seed(3);
  // q, k, v as slices of one fused [B, N, 3, H, D] projection, as a fused qkv matmul gives.
  auto qkv = at::randn({2, 100, 3, 4, 32});
  auto q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
  ASSERT_FALSE(q.is_contiguous());
  auto in = MakeInputs(1, 1, 1, 4, 32);
  auto ref = LinearAttentionReference(q.contiguous(), k.contiguous(), v.contiguous(), in.wq, in.wk);
  EXPECT_LT(MaxAbsDiff(LinearAttentionComposite(q, k, v, in.wq, in.wk, 1e-6, 33), ref), 1e-5);
  // The differentiable path too (training a hybrid layer of a batch-2 DiT took it; it threw on
  // these strides before ToHeads made its copy contiguous).
  auto wq = in.wq.clone().requires_grad_(true);
  auto trained = LinearAttentionComposite(q, k, v, wq, in.wk, 1e-6, 33);
  EXPECT_LT(MaxAbsDiff(trained.detach(), ref), 1e-5);
  trained.sum().backward();
  EXPECT_TRUE(wq.grad().defined());
}

TEST(LinearAttentionTest, IdentityFeatureMapIsSoftmaxOfInputAndItsNegation) {
  auto x = at::randn({1, 6, 2, 8});
  auto phi = HedgehogFeatureMap(x, at::eye(8).expand({2, 8, 8}));
  auto expected = at::cat({at::softmax(x, -1), at::softmax(-x, -1)}, -1);
  EXPECT_LT(MaxAbsDiff(phi, expected), 1e-7);
  // Each half is a distribution.
  EXPECT_LT(MaxAbsDiff(phi.narrow(-1, 0, 8).sum(-1), at::ones({1, 6, 2})), 1e-6);
}

TEST(LinearAttentionTest, GradPathEqualsInferencePath) {
  at::manual_seed(4);
  auto in = MakeInputs(1, 70, 70, 2, 16);
  auto no_grad = LinearAttentionComposite(in.q, in.k, in.v, in.wq, in.wk, 1e-6, 16);
  auto wq = in.wq.clone().requires_grad_(true);
  auto with_grad = LinearAttentionComposite(in.q, in.k, in.v, wq, in.wk, 1e-6, 16);
  ASSERT_TRUE(with_grad.requires_grad());
  EXPECT_LT(MaxAbsDiff(with_grad.detach(), no_grad), 1e-6);
}

TEST(LinearAttentionTest, FeatureMapGradientsMatchFiniteDifferences) {
  at::manual_seed(5);
  auto in = MakeInputs(1, 6, 5, 2, 4, at::kDouble);
  auto wq = in.wq.clone().requires_grad_(true);
  auto wk = in.wk.clone().requires_grad_(true);
  auto probe = at::randn({1, 6, 2, 4}, at::kDouble);
  auto loss_of = [&](const at::Tensor& a, const at::Tensor& b) {
    return (LinearAttentionComposite(in.q, in.k, in.v, a, b, 1e-6, 4) * probe).sum();
  };
  auto grads = torch::autograd::grad({loss_of(wq, wk)}, {wq, wk});
  at::NoGradGuard no_grad;
  const double h = 1e-6;
  for (int which = 0; which < 2; ++which) {
    auto base = (which == 0 ? in.wq : in.wk).clone();
    auto flat = base.view(-1);
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double x0 = flat[i].item<double>();
      flat[i] = x0 + h;
      const double up = (which == 0 ? loss_of(base, in.wk) : loss_of(in.wq, base)).item<double>();
      flat[i] = x0 - h;
      const double dn = (which == 0 ? loss_of(base, in.wk) : loss_of(in.wq, base)).item<double>();
      flat[i] = x0;
      const double fd = (up - dn) / (2 * h);
      EXPECT_NEAR(grads[which].view(-1)[i].item<double>(), fd, 1e-6 + 1e-5 * std::abs(fd))
          << (which == 0 ? "w_q" : "w_k") << " entry " << i;
    }
  }
  EXPECT_GT(grads[0].abs().sum().item<double>(), 0.0);
  EXPECT_GT(grads[1].abs().sum().item<double>(), 0.0);
}

TEST(LinearAttentionTest, DispatchOnCpuUsesCompositePath) {
  at::manual_seed(6);
  auto in = MakeInputs(1, 40, 40, 2, 64);
  EXPECT_FALSE(LinearAttentionUsesFusedKernel(in.q, in.k, in.v, in.wq, in.wk));
  EXPECT_TRUE(LinearAttention(in.q, in.k, in.v, in.wq, in.wk)
                  .equal(LinearAttentionComposite(in.q, in.k, in.v, in.wq, in.wk)));
  if (!LinearAttentionFusedCudaCompiled()) {
    EXPECT_THROW(LinearAttentionFusedCuda(in.q, in.k, in.v, in.wq, in.wk), c10::Error);
  }
}

TEST(LinearAttentionTest, RejectsBadShapes) {
  auto in = MakeInputs(1, 8, 8, 2, 16);
  EXPECT_THROW(LinearAttentionComposite(in.q, in.k, in.v, in.wq.narrow(0, 0, 1), in.wk),
               c10::Error);
  EXPECT_THROW(LinearAttentionComposite(in.q.view({1, 8, 32}), in.k, in.v, in.wq, in.wk),
               c10::Error);
  EXPECT_THROW(LinearAttentionReference(in.q, in.k, in.v.narrow(1, 0, 4), in.wq, in.wk),
               c10::Error);
}

// LINVIDEO_LINEAR_ATTENTION_KERNEL is read once per process, so each value is tried in a child
// (a death-test fork that sets it before the first read).
int ResolveInChild(const char* value) {
  setenv("LINVIDEO_LINEAR_ATTENTION_KERNEL", value, 1);
  try {
    const auto k = ResolveLinearAttentionCudaKernel(at::zeros({1, 4, 1, 64}, at::kBFloat16),
                                                    LinearAttentionCudaKernel::kAuto);
    return k == LinearAttentionCudaKernel::kCudaCore ? 10 : 11;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 12;
  }
}

TEST(LinearAttentionTest, CudaKernelChoiceAndItsOverride) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Without a bf16-MMA device (here a CPU tensor) auto resolves to the CUDA-core kernel, and an
  // explicit request is kept.
  EXPECT_EXIT(std::exit(ResolveInChild("auto")), ::testing::ExitedWithCode(10), "");
  EXPECT_EXIT(std::exit(ResolveInChild("cuda-core")), ::testing::ExitedWithCode(10), "");
  EXPECT_EXIT(std::exit(ResolveInChild("tensorcore")), ::testing::ExitedWithCode(12),
              "LINVIDEO_LINEAR_ATTENTION_KERNEL='tensorcore' is not a linear-attention kernel; "
              "allowed: auto");
  EXPECT_EQ(ResolveLinearAttentionCudaKernel(at::zeros({1, 4, 1, 64}),
                                             LinearAttentionCudaKernel::kTensorCore),
            LinearAttentionCudaKernel::kTensorCore);
  EXPECT_FALSE(LinearAttentionTensorCoreSupported(c10::Device(c10::kCPU), 128));
}

TEST(LinearAttentionTest, SelfCheckPassesOnCpu) {
  for (const auto& r : RunLinearAttentionParity(c10::Device(c10::kCPU))) {
    EXPECT_TRUE(r.pass) << r.ToString();
    EXPECT_EQ(r.path, "composite");
  }
}

// The fused fp32 CPU path runs heads on worker threads: under InferenceMode (how the server runs)
// they must inherit the caller's mode, or writing the inference-mode output throws there. Also
// checks that the threaded result equals the single-threaded one bit for bit (one head per task,
// no cross-thread reduction) and the reference to fp32 accuracy.
TEST(LinearAttentionTest, FusedCpuPathUnderInferenceModeAndThreads) {
  at::manual_seed(8);
  const int threads = at::get_num_threads();
  auto in = MakeInputs(2, 300, 260, 3, 32);
  const auto ref = LinearAttentionReference(in.q, in.k, in.v, in.wq, in.wk);
  at::Tensor threaded, single;
  {
    c10::InferenceMode guard;
    at::set_num_threads(2);
    threaded = LinearAttentionComposite(in.q, in.k, in.v, in.wq, in.wk, kLinearAttentionEps, 64);
    at::set_num_threads(1);
    single = LinearAttentionComposite(in.q, in.k, in.v, in.wq, in.wk, kLinearAttentionEps, 64);
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(threaded.equal(single));
  EXPECT_LT(MaxAbsDiff(threaded, ref), 1e-5);
  EXPECT_EQ(threaded.sizes(), in.q.sizes());
}

}  // namespace
}  // namespace linvideo::kernels
