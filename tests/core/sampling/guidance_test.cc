#include "core/sampling/guidance.h"

#include <ATen/ATen.h>

#include <vector>

#include "gtest/gtest.h"

namespace linvideo::core::sampling {
namespace {

TEST(GuidanceTest, ApplyGuidanceArithmetic) {
  const torch::Tensor cond = torch::tensor({1.0f, 2.0f, -3.0f});
  const torch::Tensor uncond = torch::tensor({0.5f, 2.0f, 1.0f});
  // uncond + 5 * (cond - uncond)
  EXPECT_TRUE(
      torch::allclose(ApplyGuidance(cond, uncond, 5.0), torch::tensor({3.0f, 2.0f, -19.0f})));
  EXPECT_TRUE(torch::equal(ApplyGuidance(cond, uncond, 1.0), cond));
  EXPECT_TRUE(torch::equal(ApplyGuidance(cond, uncond, 0.0), uncond));
}

TEST(GuidanceTest, SplitCondUncond) {
  const torch::Tensor out = torch::arange(12).reshape({4, 3});
  auto parts = SplitCondUncond(out);
  ASSERT_TRUE(parts.ok());
  EXPECT_TRUE(torch::equal(parts->first, out.slice(0, 0, 2)));
  EXPECT_TRUE(torch::equal(parts->second, out.slice(0, 2, 4)));
  EXPECT_FALSE(SplitCondUncond(torch::zeros({3, 2})).ok());
  EXPECT_FALSE(SplitCondUncond(torch::Tensor()).ok());
}

TEST(GuidanceTest, AllGuidedBatchIsXXAndCondUncond) {
  const std::vector<torch::Tensor> x = {torch::randn({2, 3}), torch::randn({2, 3})};
  const std::vector<torch::Tensor> c = {torch::randn({5, 4}), torch::randn({5, 4})};
  const std::vector<torch::Tensor> u = {torch::randn({5, 4}), torch::randn({5, 4})};
  auto batch = MakeGuidanceBatch(x, c, u, {5.0, 3.0});
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_TRUE(torch::equal(batch->x, torch::cat({torch::stack(x), torch::stack(x)})));
  EXPECT_TRUE(torch::equal(batch->context, torch::cat({torch::stack(c), torch::stack(u)})));
  EXPECT_EQ(batch->guided, (std::vector<int64_t>{0, 1}));

  // A fake model whose output depends on each row only.
  const torch::Tensor out = batch->x * 2 + batch->context.sum({1}).narrow(1, 0, 3).unsqueeze(1);
  auto v = CombineGuidance(*batch, out);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->size(), 2u);
  auto parts = SplitCondUncond(out);
  EXPECT_TRUE(torch::equal((*v)[0], ApplyGuidance(parts->first[0], parts->second[0], 5.0)));
  EXPECT_TRUE(torch::equal((*v)[1], ApplyGuidance(parts->first[1], parts->second[1], 3.0)));
}

TEST(GuidanceTest, MixedBatchGivesEachRequestItsOwnResult) {
  const std::vector<torch::Tensor> x = {torch::randn({3}), torch::randn({3}), torch::randn({3})};
  const std::vector<torch::Tensor> c = {torch::randn({2, 3}), torch::randn({2, 3}),
                                        torch::randn({2, 3})};
  const std::vector<torch::Tensor> u = {torch::randn({2, 3}), torch::Tensor(),
                                        torch::randn({2, 3})};
  const std::vector<double> scales = {4.0, 1.0, 6.5};
  auto model = [](const torch::Tensor& xb, const torch::Tensor& cb) {
    return xb * 3 - cb.mean(1);  // [n, 3]
  };
  auto batch = MakeGuidanceBatch(x, c, u, scales);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->x.size(0), 5);
  EXPECT_EQ(batch->guided, (std::vector<int64_t>{0, 2}));
  auto v = CombineGuidance(*batch, model(batch->x, batch->context));
  ASSERT_TRUE(v.ok());
  for (int i = 0; i < 3; ++i) {
    // The same request alone: its own one- or two-row batch.
    auto alone = MakeGuidanceBatch({x[i]}, {c[i]}, {u[i]}, {scales[i]});
    ASSERT_TRUE(alone.ok());
    auto va = CombineGuidance(*alone, model(alone->x, alone->context));
    ASSERT_TRUE(va.ok());
    EXPECT_TRUE(torch::equal((*v)[i], (*va)[0])) << i;
  }
  EXPECT_TRUE(torch::equal((*v)[1], model(batch->x, batch->context)[1]));  // unguided: cond only
}

TEST(GuidanceTest, RejectsMismatches) {
  const torch::Tensor a = torch::zeros({3}), ctx = torch::zeros({2, 3});
  EXPECT_FALSE(MakeGuidanceBatch({}, {}, {}, {}).ok());
  EXPECT_FALSE(MakeGuidanceBatch({a}, {ctx}, {ctx}, {}).ok());
  EXPECT_FALSE(MakeGuidanceBatch({a, torch::zeros({4})}, {ctx, ctx}, {ctx, ctx}, {1, 1}).ok());
  EXPECT_FALSE(MakeGuidanceBatch({a}, {ctx}, {torch::zeros({2, 4})}, {5}).ok());
  auto batch = MakeGuidanceBatch({a}, {ctx}, {ctx}, {5});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(CombineGuidance(*batch, torch::zeros({3, 3})).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace linvideo::core::sampling
