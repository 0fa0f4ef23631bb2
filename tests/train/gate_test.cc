// The publish gate's statistics: the exact McNemar p-value against binomial sums computed
// with Python's exact integers, the decision's two conditions, the Wilson interval.
#include "t2/train/gate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace t2::train {
namespace {

using ::testing::HasSubstr;

TEST(McNemar, ExactOneSidedTail) {
  // sum(comb(n, i) for i in range(k, n + 1)) / 2**n
  EXPECT_NEAR(McNemarExactP(8, 10), 0.0546875, 1e-12);
  EXPECT_NEAR(McNemarExactP(60, 100), 0.028443966820490395, 1e-12);
  EXPECT_NEAR(McNemarExactP(530, 1000), 0.03101159754918159, 1e-10);
  EXPECT_NEAR(McNemarExactP(1, 1), 0.5, 1e-12);
  EXPECT_EQ(McNemarExactP(0, 10), 1.0);  // no wins: no evidence
  EXPECT_EQ(McNemarExactP(0, 0), 1.0);   // no disagreements
}

std::vector<bool> Results(int right, int n) {
  std::vector<bool> r(n, false);
  for (int i = 0; i < right; ++i) r[i] = true;
  return r;
}

TEST(Decide, PublishesOnlyASignificantLargeEnoughGain) {
  // 500 questions; the current version answers the first 200, the candidate the first 240.
  auto better = Decide(Results(240, 500), Results(200, 500), {});
  ASSERT_TRUE(better.ok());
  EXPECT_TRUE(better->publish) << better->reason;
  EXPECT_EQ(better->candidate_only, 40);
  EXPECT_EQ(better->current_only, 0);
  EXPECT_NEAR(better->candidate_accuracy - better->current_accuracy, 0.08, 1e-12);

  // The same answers (a constant expert is the base model): no gain.
  auto same = Decide(Results(200, 500), Results(200, 500), {});
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->publish);
  EXPECT_THAT(same->reason, HasSubstr("gain too small"));

  // +1.2 points, but from 31 wins against 25 losses: not significant.
  std::vector<bool> candidate = Results(200, 500), current = Results(200, 500);
  for (int i = 0; i < 25; ++i) candidate[i] = false;     // 25 the candidate loses
  for (int i = 200; i < 231; ++i) candidate[i] = true;   // 31 it wins
  auto noisy = Decide(candidate, current, {});
  ASSERT_TRUE(noisy.ok());
  EXPECT_FALSE(noisy->publish);
  EXPECT_GT(noisy->p_value, 0.05);
  EXPECT_THAT(noisy->reason, HasSubstr("not significant"));

  // Significant, but below a minimum gain of 10 points.
  auto small = Decide(Results(240, 500), Results(200, 500), {.min_gain = 0.1});
  ASSERT_TRUE(small.ok());
  EXPECT_FALSE(small->publish);

  // Worse is never published.
  auto worse = Decide(Results(150, 500), Results(200, 500), {.min_gain = 0});
  ASSERT_TRUE(worse.ok());
  EXPECT_FALSE(worse->publish);
}

TEST(Decide, RefusesBadInput) {
  EXPECT_FALSE(Decide({}, {}, {}).ok());
  EXPECT_FALSE(Decide(Results(1, 3), Results(1, 4), {}).ok());
  EXPECT_FALSE(Decide(Results(1, 3), Results(1, 3), {.max_p = 0}).ok());
  EXPECT_FALSE(Decide(Results(1, 3), Results(1, 3), {.min_gain = -0.1}).ok());
}

TEST(Wilson, MatchesTheFormula) {
  const Interval a = Wilson95(40, 100);
  EXPECT_NEAR(a.low, 0.3094012864324589, 1e-12);
  EXPECT_NEAR(a.high, 0.4979974132089382, 1e-12);
  const Interval none = Wilson95(0, 10);
  EXPECT_NEAR(none.low, 0.0, 1e-12);
  EXPECT_NEAR(none.high, 0.2775327998628892, 1e-12);
}

}  // namespace
}  // namespace t2::train
