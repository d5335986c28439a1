// Fused CUDA linear attention vs the reference (label gpu; skips without a CUDA device).

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <string>

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
  const bool mma = LinearAttentionTensorCoreSupported(c10::Device(c10::kCUDA, 0), 128);
  int tensor_core_rows = 0, cuda_core_bf16_rows = 0;
  for (const auto& r : results) {
    EXPECT_TRUE(r.pass) << r.ToString();
    if (!LinearAttentionFusedCudaCompiled()) continue;
    EXPECT_NE(r.path, "composite") << r.ToString();
    // fp32 always takes the CUDA-core kernel; bf16 the tensor-core one from sm_80 on.
    if (r.dtype == c10::kFloat) EXPECT_EQ(r.path, "cuda-core") << r.ToString();
    if (r.dtype == c10::kBFloat16) {
      tensor_core_rows += r.path == "tensor-core";
      cuda_core_bf16_rows += r.path == "cuda-core";
    }
  }
  if (LinearAttentionFusedCudaCompiled() && mma &&
      std::getenv("LINVIDEO_LINEAR_ATTENTION_KERNEL") == nullptr) {
    EXPECT_EQ(tensor_core_rows, 7) << "every bf16 case dispatches to the tensor-core kernel";
    EXPECT_EQ(cuda_core_bf16_rows, 7) << "and is checked on the CUDA-core fallback too";
  }
}

TEST(LinearAttentionGpuTest, TensorCoreKernelRefusesWhatItCannotRun) {
  if (!torch::cuda::is_available() || !LinearAttentionFusedCudaCompiled()) {
    GTEST_SKIP() << "no CUDA device or no fused kernel";
  }
  auto opts = at::TensorOptions().device(at::kCUDA);
  auto x = at::randn({1, 70, 2, 64}, opts);  // fp32: the tensor-core kernel is bf16 only
  auto w = at::eye(64, opts).expand({2, 64, 64}).contiguous();
  try {
    LinearAttentionFusedCuda(x, x, x, w, w, kLinearAttentionEps,
                             LinearAttentionCudaKernel::kTensorCore);
    ADD_FAILURE() << "an fp32 call to the tensor-core kernel was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bfloat16"), std::string::npos) << e.what();
  }
  // A misaligned (storage-offset) bf16 view is copied, not read unaligned.
  if (LinearAttentionTensorCoreSupported(c10::Device(c10::kCUDA, 0), 128)) {
    auto flat = at::randn({1 + 70 * 2 * 64}, opts).to(at::kBFloat16);
    auto q = flat.narrow(0, 1, 70 * 2 * 64).view({1, 70, 2, 64});  // data 2 bytes off alignment
    auto out = LinearAttentionFusedCuda(q, q, q, w, w, kLinearAttentionEps,
                                        LinearAttentionCudaKernel::kTensorCore);
    auto ref = LinearAttentionReference(q.to(at::kFloat), q.to(at::kFloat), q.to(at::kFloat), w, w);
    EXPECT_LT((out.to(at::kFloat) - ref).norm().item<double>() / ref.norm().item<double>(), 5e-3);
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
