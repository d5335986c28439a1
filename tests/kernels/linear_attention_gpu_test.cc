// Fused CUDA linear attention vs the reference (label gpu; skips without a CUDA device).

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "kernels/linear_attention.h"
#include "kernels/linear_attention_selfcheck.h"

namespace linvideo::kernels {
namespace {

TEST(LinearAttentionGpuTest, FusedKernelMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!LinearAttentionFusedCudaCompiled()) {
    ADD_FAILURE() << "a CUDA device is present but this build has no fused kernel "
                     "(configure with nvcc and a CUDA LibTorch)";
  }
  const auto results = RunLinearAttentionParity(c10::Device(c10::kCUDA, 0));
  ASSERT_FALSE(results.empty());
  for (const auto& r : results) {
    EXPECT_TRUE(r.pass) << r.ToString();
    if (LinearAttentionFusedCudaCompiled()) EXPECT_EQ(r.path, "fused") << r.ToString();
  }
}

TEST(LinearAttentionGpuTest, GradientRequestFallsBackToComposite) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto opts = at::TensorOptions().device(at::kCUDA);
  auto q = at::randn({1, 64, 2, 64}, opts), k = at::randn({1, 64, 2, 64}, opts),
       v = at::randn({1, 64, 2, 64}, opts);
  auto w = at::eye(64, opts).expand({2, 64, 64}).clone().requires_grad_(true);
  EXPECT_FALSE(LinearAttentionUsesFusedKernel(q, k, v, w, w));
  auto out = LinearAttention(q, k, v, w, w);
  out.sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_TRUE(w.grad().isfinite().all().item<bool>());
}

}  // namespace
}  // namespace linvideo::kernels
