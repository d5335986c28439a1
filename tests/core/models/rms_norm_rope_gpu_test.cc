// kernels/rms_norm_rope.h, the fused q/k RMSNorm + RoPE + cast of the Wan self-attention, against
// what core/models/wan runs without it (dit::RmsNorm, ApplyRope on a MakeRopeTable table, the cast
// to the values' type). On the CPU: never applicable, arguments checked with the expected shapes.
// On a GPU (label gpu, skipped without one): equal to the composite (fp32: to rounding; bf16: to
// one rounding of the output), and a whole self-attention layer on CUDA (fused) matches the CPU's.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <string>
#include <tuple>

#include "core/attention/attention.h"
#include "core/models/wan/dit_block.h"
#include "core/models/wan/dit_ops.h"
#include "core/models/wan/rope.h"
#include "kernels/rms_norm_rope.h"

namespace linvideo::core::wan {
namespace {

at::Tensor Composite(const at::Tensor& x, const at::Tensor& w, double eps, const RopeTable& t,
                     int64_t heads) {
  const auto normed = dit::RmsNorm(x, w, eps);  // fp32 [B, N, C]
  const auto q = normed.view({x.size(0), x.size(1), heads, x.size(2) / heads});
  return ApplyRope(q, t).to(x.scalar_type());
}

TEST(RmsNormRopeTest, NeverAppliesOnTheCpuAndChecksShapes) {
  const auto x = at::randn({1, 5, 16});  // 2 heads of 8
  EXPECT_FALSE(kernels::RmsNormRopeFusedApplies(x, x.scalar_type()));
  const RopeTable t = MakeRopeTable(/*head_dim=*/8, 5, 1, 1);
  try {
    kernels::RmsNormRopeFused(x, at::ones({15}), 1e-6, t.cos, t.sin, /*heads=*/2);
    FAIL() << "a 15-element weight for 16 channels was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight must have 16 elements"), std::string::npos)
        << e.what();
  }
  try {
    kernels::RmsNormRopeFused(x, at::ones({16}), 1e-6, t.cos.narrow(0, 0, 4), t.sin.narrow(0, 0, 4),
                              2);
    FAIL() << "a 4-token table for 5 tokens was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cos/sin must be [5, 1, 4]"), std::string::npos)
        << e.what();
  }
}

TEST(RmsNormRopeGpuTest, MatchesTheComposite) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  at::NoGradGuard no_grad;
  const c10::Device gpu(c10::kCUDA, 0);
  at::manual_seed(0);
  // Wan 1.3B's 12 x 128 on a 3 x 3 x 4 grid (36 tokens), 12 x 64 (384 pairs: a partial last
  // round of the block's 256 threads), and 2 x 64 on 5 x 6 x 10 (300 tokens); batch 2, the CFG
  // pair.
  for (const auto& [heads, d, f, h, w] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{12, 128, 3, 3, 4},
        std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{12, 64, 2, 2, 3},
        std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{2, 64, 5, 6, 10}}) {
    const RopeTable t = MakeRopeTable(d, f, h, w, gpu);
    const int64_t n = f * h * w;
    const auto weight = at::rand({heads * d}, at::TensorOptions().device(gpu)) + 0.5;
    for (const auto dtype : {at::kFloat, at::kBFloat16}) {
      const auto x = (at::randn({2, n, heads * d}, at::TensorOptions().device(gpu)) * 3).to(dtype);
      ASSERT_TRUE(kernels::RmsNormRopeFusedApplies(x, dtype));
      // A bf16 model's norm weight is bf16: the bf16 case takes it so.
      const auto wt = dtype == at::kBFloat16 ? weight.to(at::kBFloat16) : weight;
      const auto got = kernels::RmsNormRopeFused(x, wt, 1e-6, t.cos, t.sin, heads).to(at::kFloat);
      const auto want = Composite(x, wt, 1e-6, t, heads).to(at::kFloat);
      ASSERT_EQ(got.sizes(), want.sizes());
      const double err = (got - want).abs().max().item<double>();
      const double scale = want.abs().max().item<double>();
      // fp32: rounding only; bf16: the output rounded once either way, an ulp apart at most.
      EXPECT_LE(err, dtype == at::kFloat ? 1e-5 * scale : 8e-3 * scale)
          << heads << "x" << d << " n=" << n << " " << dtype;
    }
  }
}

TEST(RmsNormRopeGpuTest, ASelfAttentionLayerOnCudaMatchesTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  at::NoGradGuard no_grad;
  // The layer below takes the fused path (else this compares the composite with itself).
  ASSERT_EQ(std::getenv("LINVIDEO_FUSED_NORM_ROPE"), nullptr);
  ASSERT_TRUE(kernels::RmsNormRopeFusedApplies(
      at::zeros({2, 24, 128}, at::TensorOptions().device(c10::Device(c10::kCUDA, 0))), at::kFloat));
  at::manual_seed(1);
  attention::AttentionCoreOptions o;
  o.kind = attention::AttentionKind::kSoftmax;
  o.num_heads = 4;
  o.head_dim = 32;
  auto core = attention::MakeAttentionCore(o);
  ASSERT_TRUE(core.ok()) << core.status();
  WanSelfAttention layer(128, 4, /*qk_norm=*/true, 1e-6, *core);
  const RopeTable cpu_table = MakeRopeTable(32, 2, 3, 4);
  const auto x = at::randn({2, 24, 128});
  const auto want = layer->forward(x, cpu_table);
  layer->to(c10::Device(c10::kCUDA, 0));
  const c10::Device gpu(c10::kCUDA, 0);
  const auto got = layer->forward(x.to(gpu), MakeRopeTable(32, 2, 3, 4, gpu)).cpu();
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-4 * want.abs().max().item<double>());
}

}  // namespace
}  // namespace linvideo::core::wan
