#include "kernels/softmax_attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace linvideo::kernels {
namespace {

// softmax(q kᵀ / sqrt(d)) v with the full N² matrix, per head, in double.
torch::Tensor Reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  auto qd = q.to(torch::kDouble).permute({0, 2, 1, 3});  // [B, H, N, D]
  auto kd = k.to(torch::kDouble).permute({0, 2, 1, 3});
  auto vd = v.to(torch::kDouble).permute({0, 2, 1, 3});
  auto p = torch::softmax(torch::matmul(qd, kd.transpose(-1, -2)) / std::sqrt(q.size(3)), -1);
  return torch::matmul(p, vd).permute({0, 2, 1, 3});
}

TEST(SoftmaxAttentionTest, ChunkedEqualsFullMatrixIncludingPartialLastChunk) {
  torch::manual_seed(0);
  auto q = torch::randn({2, 37, 3, 16});
  auto k = torch::randn({2, 29, 3, 16});
  auto v = torch::randn({2, 29, 3, 16});
  auto ref = Reference(q, k, v);
  // Budgets giving 1-row chunks, 5-row chunks (37 = 7*5 + 2) and one chunk.
  const int64_t row = 2 * 3 * 29 * 4;
  for (int64_t budget : {int64_t{1}, 5 * row, kDefaultScoreBudgetBytes}) {
    auto out = SoftmaxAttention(q, k, v, 0.0, budget);
    EXPECT_EQ(out.sizes(), q.sizes());
    EXPECT_LT((out.to(torch::kDouble) - ref).abs().max().item<double>(), 1e-5) << budget;
  }
}

TEST(SoftmaxAttentionTest, GradientsFlowAndMatchTheInferencePath) {
  torch::manual_seed(1);
  auto q = torch::randn({1, 11, 2, 8}, torch::requires_grad());
  auto k = torch::randn({1, 11, 2, 8}, torch::requires_grad());
  auto v = torch::randn({1, 11, 2, 8}, torch::requires_grad());
  auto out = SoftmaxAttention(q, k, v, 0.0, 2 * 2 * 11 * 4);
  torch::Tensor inference;
  {
    torch::NoGradGuard no_grad;
    inference = SoftmaxAttention(q, k, v, 0.0, 2 * 2 * 11 * 4);
  }
  EXPECT_TRUE(torch::allclose(out.detach(), inference, 1e-5, 1e-6));
  out.sum().backward();
  ASSERT_TRUE(q.grad().defined() && k.grad().defined() && v.grad().defined());
  EXPECT_GT(v.grad().abs().sum().item<float>(), 0.f);
}

}  // namespace
}  // namespace linvideo::kernels
