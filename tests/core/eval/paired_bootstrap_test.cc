// Paired bootstrap: exact on constant differences, the interval brackets the mean and narrows
// with more pairs, pairing (not the two marginals) decides the width, and bad input is refused.
#include "core/eval/paired_bootstrap.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace linvideo::core::eval {
namespace {

TEST(PairedBootstrapTest, ConstantDifferenceHasAZeroWidthInterval) {
  const std::vector<double> base = {0.1, 0.5, 0.9, 0.3};
  std::vector<double> cand;
  for (double b : base) cand.push_back(b + 0.2);
  auto ci = PairedBootstrap(cand, base);
  ASSERT_TRUE(ci.ok()) << ci.status();
  EXPECT_NEAR(ci->mean, 0.2, 1e-12);
  EXPECT_NEAR(ci->lo, 0.2, 1e-12);
  EXPECT_NEAR(ci->hi, 0.2, 1e-12);
}

TEST(PairedBootstrapTest, IntervalBracketsTheMeanAndNarrowsWithMorePairs) {
  std::mt19937_64 rng(1);
  std::bernoulli_distribution coin(0.5);
  auto width = [&](int n) {
    std::vector<double> a, b;
    for (int i = 0; i < n; ++i) {
      a.push_back(coin(rng));
      b.push_back(coin(rng));
    }
    auto ci = PairedBootstrap(a, b, 4000, 0.95, 3);
    EXPECT_TRUE(ci.ok());
    EXPECT_LE(ci->lo, ci->mean);
    EXPECT_GE(ci->hi, ci->mean);
    return ci->hi - ci->lo;
  };
  const double w25 = width(25), w400 = width(400);
  EXPECT_LT(w400, w25 / 2.5);  // ~1/sqrt(16) = 1/4 expected
  // Independent fair coins: each difference has variance 0.5, so the width is
  // ~2 * 1.96 * sqrt(0.5 / n) = 0.139 at n = 400.
  EXPECT_NEAR(w400, 0.139, 0.02);
}

TEST(PairedBootstrapTest, PairingRemovesSharedVariation) {
  // Scores vary a lot between videos but the candidate is always 0.01 better: a paired interval is
  // tight and excludes zero.
  std::vector<double> base, cand;
  for (int i = 0; i < 50; ++i) {
    base.push_back((i * 37 % 100) / 100.0);
    cand.push_back(base.back() + 0.01 + (i % 2 ? 0.001 : -0.001));
  }
  auto ci = PairedBootstrap(cand, base);
  ASSERT_TRUE(ci.ok());
  EXPECT_GT(ci->lo, 0.0);
  EXPECT_LT(ci->hi - ci->lo, 0.002);
}

TEST(PairedBootstrapTest, BadInputIsRefused) {
  EXPECT_FALSE(PairedBootstrap({}, {}).ok());
  EXPECT_FALSE(PairedBootstrap({1, 2}, {1}).ok());
  EXPECT_FALSE(PairedBootstrap({1}, {1}, 0).ok());
  EXPECT_FALSE(PairedBootstrap({1}, {1}, 10, 1.0).ok());
}

}  // namespace
}  // namespace linvideo::core::eval
