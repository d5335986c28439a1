// Selective transfer: L_con with the straight-through rounding, L_reg and its α schedule on
// hand-computed values and gradients, binarisation to exactly K layers, and option validation.
#include "core/posttrain/selective_transfer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

namespace linvideo::core::posttrain {
namespace {

std::vector<torch::Tensor> Gates(const std::vector<float>& values) {
  std::vector<torch::Tensor> r;
  for (float v : values) r.push_back(torch::full({}, v).requires_grad_(true));
  return r;
}

TEST(SelectiveTransferTest, RoundingPassesTheGradientStraightThrough) {
  auto r = torch::tensor({0.2f, 0.7f, 0.5f}).requires_grad_(true);
  auto y = RoundStraightThrough(r);
  EXPECT_TRUE(torch::equal(y.detach(), torch::tensor({0.0f, 1.0f, 0.0f})));  // half to even
  (y * torch::tensor({1.0f, 2.0f, 3.0f})).sum().backward();
  EXPECT_TRUE(torch::equal(r.grad(), torch::tensor({1.0f, 2.0f, 3.0f})));
}

TEST(SelectiveTransferTest, ConstraintLossCountsSoftmaxLayersIncludingPinnedOnes) {
  // 6 layers, layer 0 pinned, K = 3: the target is 3 softmax layers, of which 1 is pinned, so the
  // 5 gates must round to 2 ones. Gates round to 1,1,1,0,0 -> 3 + 1 pinned = 4 softmax: (4-3)^2.
  SelectionOptions o{6, 3, {0}};
  auto r = Gates({0.9f, 0.6f, 0.8f, 0.2f, 0.4f});
  auto loss = ConstraintLoss(r, o);
  EXPECT_FLOAT_EQ(loss.item<float>(), 1.0f);
  loss.backward();
  // d/dr_i (S - T)^2 = 2 (S - T) through the STE: 2 for every gate.
  for (const auto& g : r) EXPECT_FLOAT_EQ(g.grad().item<float>(), 2.0f);
  // Exactly on target: zero loss and zero gradient.
  auto on = Gates({0.9f, 0.6f, 0.1f, 0.2f, 0.4f});
  auto zero = ConstraintLoss(on, o);
  zero.backward();
  EXPECT_FLOAT_EQ(zero.item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(on[0].grad().item<float>(), 0.0f);
}

TEST(SelectiveTransferTest, RegularizerValuesGradientsAndAlphaSchedule) {
  // 1 - |2r - 1|^α: r = 0.5 -> 1, r = 0 or 1 -> 0; r = 0.75, α = 2 -> 1 - 0.25 = 0.75.
  auto r = Gates({0.5f, 0.0f, 1.0f, 0.75f});
  auto loss = RegularizationLoss(r, 2.0);
  EXPECT_FLOAT_EQ(loss.item<float>(), 1.0f + 0.0f + 0.0f + 0.75f);
  loss.backward();
  // d/dr = -α |2r - 1|^(α-1) sign(2r - 1) · 2; at r = 0.75, α = 2: -2 · 0.5 · 2 = -2 (towards 1).
  EXPECT_FLOAT_EQ(r[3].grad().item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(r[0].grad().item<float>(), 0.0f);
  // A gate below 0.5 is pushed towards 0 (positive gradient: descent lowers it).
  auto low = Gates({0.25f});
  RegularizationLoss(low, 2.0).backward();
  EXPECT_FLOAT_EQ(low[0].grad().item<float>(), 2.0f);
  // α = 20 is flat except near 0 and 1: r = 0.75 costs almost the full 1.
  EXPECT_NEAR(RegularizationLoss(Gates({0.75f}), 20.0).item<float>(), 1.0 - std::pow(0.5, 20),
              1e-6);

  EXPECT_DOUBLE_EQ(RegularizerAlpha(0, 100), 20.0);
  EXPECT_DOUBLE_EQ(RegularizerAlpha(99, 100), 2.0);
  EXPECT_DOUBLE_EQ(RegularizerAlpha(500, 100), 2.0);   // past the end: stays at the end value
  EXPECT_NEAR(RegularizerAlpha(33, 67), 11.0, 1e-12);  // halfway
  EXPECT_DOUBLE_EQ(RegularizerAlpha(0, 1), 2.0);
}

TEST(SelectiveTransferTest, BinarizeKeepsExactlyKLinearLayers) {
  SelectionOptions o{6, 3, {0}};
  EXPECT_EQ(HybridLayers(o), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  auto b = Binarize({0.9, 0.1, 0.8, 0.2, 0.3}, o);  // layers 1..5
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->linear, (std::vector<int64_t>{2, 4, 5}));
  EXPECT_TRUE(b->rounding_agreed);
  // Rounding gives 4 linear layers; the 3 smallest r win (tie at 0.2: the lower layer).
  auto disagree = Binarize({0.2, 0.1, 0.2, 0.4, 0.9}, o);
  ASSERT_TRUE(disagree.ok());
  EXPECT_EQ(disagree->linear, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_FALSE(disagree->rounding_agreed);
  EXPECT_FALSE(Binarize({0.1, 0.2}, o).ok());  // one gate per hybrid layer
}

TEST(SelectiveTransferTest, BadOptionsSayWhatIsAllowed) {
  struct Case {
    SelectionOptions o;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{6, 6, {0}}, "K = 6 is not allowed: use 1..5 for a 6-layer model"},
      {{6, 0, {0}}, "K = 0 is not allowed"},
      {{6, 4, {0, 1, 2}}, "K = 4 exceeds the 3 layers that are not pinned (pinned: 0,1,2)"},
      {{6, 2, {6}}, "pinned layer 6 is out of range: layers are 0..5"},
      {{6, 2, {1, 1}}, "pinned layer 1 is listed twice"},
      {{1, 1, {}}, "need at least 2"},
  };
  for (const Case& c : cases) {
    const absl::Status s = ValidateSelection(c.o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.expect;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s;
  }
  EXPECT_TRUE(ValidateSelection({6, 3, {0}}).ok());
  EXPECT_TRUE(ValidateSelection({6, 5, {}}).ok());
}

}  // namespace
}  // namespace linvideo::core::posttrain
