#include "kernels/torch_compat.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace linvideo::kernels {
namespace {

at::ScalarType MatmulType() {
  const at::Tensor a = at::randn({4, 8});
  const at::Tensor b = at::randn({8, 3});
  return at::matmul(a, b).scalar_type();
}

TEST(ScopedCpuBf16AutocastTest, MatmulsRunInBf16InsideAndFp32Outside) {
  EXPECT_EQ(MatmulType(), at::kFloat);
  {
    ScopedCpuBf16Autocast autocast(true);
    EXPECT_EQ(MatmulType(), at::kBFloat16);
    // Reductions stay in the input precision; only the lower-precision op list is cast.
    EXPECT_EQ(at::randn({4}).sum().scalar_type(), at::kFloat);
    {
      ScopedCpuBf16Autocast nested(true);
      EXPECT_EQ(MatmulType(), at::kBFloat16);
    }
    EXPECT_EQ(MatmulType(), at::kBFloat16);  // the inner scope restored "enabled"
  }
  EXPECT_EQ(MatmulType(), at::kFloat);
}

TEST(ScopedCpuBf16AutocastTest, DisabledIsANoOp) {
  ScopedCpuBf16Autocast autocast(false);
  EXPECT_EQ(MatmulType(), at::kFloat);
}

TEST(ScopedCpuBf16AutocastTest, GradientsOfFp32WeightsStayFp32AndMatchFp32Closely) {
  const at::Tensor w = at::randn({16, 16}).requires_grad_();
  const at::Tensor x = at::randn({32, 16});
  at::Tensor y32 = at::matmul(x, w);
  at::Tensor y16;
  {
    ScopedCpuBf16Autocast autocast(true);
    y16 = at::matmul(x, w);
  }
  y16.to(at::kFloat).pow(2).sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().scalar_type(), at::kFloat);
  // bf16 keeps 8 significant bits: relative error ~1e-2, not garbage.
  EXPECT_LT((y16.to(at::kFloat) - y32).abs().max().item<float>(),
            0.05f * y32.abs().max().item<float>());
}

}  // namespace
}  // namespace linvideo::kernels
