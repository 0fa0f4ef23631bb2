#include "t2/engine/sampling.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "t2/engine/stop_strings.h"

namespace t2::engine {
namespace {

using ::testing::HasSubstr;

TEST(SamplingParams, ValidateNamesTheField) {
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
  EXPECT_THAT(SamplingParams{.temperature = -1}.Validate().message(), HasSubstr("sampling.temperature"));
  EXPECT_THAT(SamplingParams{.temperature = NAN}.Validate().message(), HasSubstr("sampling.temperature"));
  EXPECT_THAT(SamplingParams{.top_k = -2}.Validate().message(), HasSubstr("sampling.top_k"));
  EXPECT_THAT(SamplingParams{.top_p = 0}.Validate().message(), HasSubstr("sampling.top_p"));
  EXPECT_THAT(SamplingParams{.top_p = 1.5}.Validate().message(), HasSubstr("sampling.top_p"));
}

TEST(Sampler, GreedyTakesFirstMaximum) {
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(Sampler(SamplingParams{}).Sample(logits), 1);
  EXPECT_EQ(Argmax(logits), 1);
}

// logits / T overflows float for T near 1e-38: the sampler used to return the least likely
// kept token there. Every temperature below kMinTemperature is argmax.
TEST(Sampler, TinyTemperaturesAreGreedy) {
  std::vector<float> logits = {1.0f, 5.0f, 3.0f, -2.0f};
  for (float t : {1e-45f, 1e-38f, 1e-30f, 1e-6f, kMinTemperature / 2}) {
    EXPECT_TRUE(SamplingParams{.temperature = t}.Validate().ok()) << t;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      EXPECT_EQ(Sampler({.temperature = t, .seed = seed}).Sample(logits), 1) << "temperature " << t;
    }
  }
  EXPECT_FALSE(SamplingParams{.temperature = kMinTemperature}.greedy());
}

TEST(Sampler, TopKOneAndTinyTopPAreGreedy) {
  std::vector<float> logits = {0.5f, 0.2f, 2.5f, 2.4f};
  for (uint64_t seed = 0; seed < 50; ++seed) {
    EXPECT_EQ(Sampler({.temperature = 1.0f, .top_k = 1, .seed = seed}).Sample(logits), 2);
    EXPECT_EQ(Sampler({.temperature = 1.0f, .top_p = 0.01f, .seed = seed}).Sample(logits), 2);
  }
}

TEST(Sampler, SameSeedSameSequence) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = std::sin(i * 0.7f);
  Sampler a({.temperature = 1.0f, .seed = 42}), b({.temperature = 1.0f, .seed = 42});
  for (int i = 0; i < 200; ++i) EXPECT_EQ(a.Sample(logits), b.Sample(logits));
}

// Frequencies follow softmax(logits / T) restricted by top-k / top-p; the expected
// probabilities here are computed independently of the sampler's code path.
TEST(Sampler, FrequenciesFollowTheFilteredDistribution) {
  std::vector<float> logits = {1.0f, 2.0f, 0.0f, 1.5f, -1.0f};
  auto softmax = [](std::vector<double> x) {
    double m = *std::max_element(x.begin(), x.end()), s = 0;
    for (auto& v : x) s += v = std::exp(v - m);
    for (auto& v : x) v /= s;
    return x;
  };
  const int draws = 200000;
  // T = 0.5, top_k = 3: tokens 1, 3, 0 only.
  std::vector<double> expected(5, 0.0);
  auto p3 = softmax({2.0 / 0.5, 1.5 / 0.5, 1.0 / 0.5});
  expected[1] = p3[0];
  expected[3] = p3[1];
  expected[0] = p3[2];
  Sampler s({.temperature = 0.5f, .top_k = 3, .seed = 7});
  std::map<int, int> counts;
  for (int i = 0; i < draws; ++i) counts[s.Sample(logits)]++;
  for (int t = 0; t < 5; ++t) EXPECT_NEAR(counts[t] / double(draws), expected[t], 0.005) << "token " << t;

  // T = 1, top_p = 0.7: sorted probs of all five; keep the smallest prefix reaching 0.7.
  auto p = softmax({1.0, 2.0, 0.0, 1.5, -1.0});
  std::vector<int> order = {1, 3, 0, 2, 4};
  double mass = 0;
  std::vector<int> kept;
  for (int t : order) {
    kept.push_back(t);
    mass += p[t];
    if (mass >= 0.7) break;
  }
  Sampler nucleus({.temperature = 1.0f, .top_p = 0.7f, .seed = 9});
  counts.clear();
  for (int i = 0; i < draws; ++i) counts[nucleus.Sample(logits)]++;
  for (int t = 0; t < 5; ++t) {
    bool in = std::find(kept.begin(), kept.end(), t) != kept.end();
    EXPECT_NEAR(counts[t] / double(draws), in ? p[t] / mass : 0.0, 0.005) << "token " << t;
  }
}

TEST(LogProbability, MatchesLogSoftmax) {
  std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  double z = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(LogProbability(logits, 0), 1.0 - z, 1e-6);
  EXPECT_NEAR(LogProbability(logits, 2), 3.0 - z, 1e-6);
}

TEST(StopStringMatcher, HoldsBackPossiblePrefixesAndCutsAtTheStop) {
  StopStringMatcher m({"###", "END"});
  EXPECT_EQ(m.Feed("hello #"), "hello ");
  EXPECT_EQ(m.Feed("#"), "");
  EXPECT_EQ(m.Feed(" no"), "## no");
  EXPECT_EQ(m.Feed(" EN"), " ");
  EXPECT_EQ(m.Feed("D tail"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Feed("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringMatcher, StopInsideOneFeedAndFlushWithoutStop) {
  StopStringMatcher m({"\n\n"});
  EXPECT_EQ(m.Feed("a\nb\n\nc"), "a\nb");
  EXPECT_TRUE(m.stopped());
  StopStringMatcher n({"xyz"});
  EXPECT_EQ(n.Feed("abcx"), "abc");
  EXPECT_EQ(n.Flush(), "x");
  StopStringMatcher none({});
  EXPECT_EQ(none.Feed("anything"), "anything");
}

}  // namespace
}  // namespace t2::engine
