// lib/adapt: the first pass's prompt and answer parsing, label scoring helpers, verifiers and
// the CEM optimiser (on synthetic objectives, no model).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "t2/adapt/cem.h"
#include "t2/adapt/classify.h"
#include "t2/adapt/verifier.h"

namespace t2::adapt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;

// ---------------------------------------------------------------- classification

TEST(LastBoxedTest, SimpleNestedSeveralAndNone) {
  EXPECT_THAT(LastBoxed("The answer is \\boxed{math}."), Optional(std::string("math")));
  EXPECT_THAT(LastBoxed("\\boxed{\\text{code}}"), Optional(std::string("\\text{code}")));
  EXPECT_THAT(LastBoxed("\\boxed{\\frac{1}{2}} and {x}"), Optional(std::string("\\frac{1}{2}")));
  EXPECT_THAT(LastBoxed("first \\boxed{code} then \\boxed{math}"), Optional(std::string("math")));
  EXPECT_THAT(LastBoxed("spaced \\boxed {reasoning}"), Optional(std::string("reasoning")));
  EXPECT_THAT(LastBoxed("\\boxed{}"), Optional(std::string("")));
  EXPECT_EQ(LastBoxed("no box here {math}"), std::nullopt);
  EXPECT_EQ(LastBoxed(""), std::nullopt);
  EXPECT_EQ(LastBoxed("\\boxed without braces"), std::nullopt);
}

TEST(LastBoxedTest, UnclosedBoxDoesNotCount) {
  // A classifier cut off by its token limit: the complete box before it still counts.
  EXPECT_THAT(LastBoxed("\\boxed{code} or maybe \\boxed{ma"), Optional(std::string("code")));
  EXPECT_EQ(LastBoxed("\\boxed{\\text{math}"), std::nullopt);
}

TEST(CategoryTest, NormalizesKnownLabels) {
  EXPECT_EQ(NormalizeCategory("math"), "math");
  EXPECT_EQ(NormalizeCategory("  MATH \n"), "math");
  EXPECT_EQ(NormalizeCategory("Code."), "code");
  EXPECT_EQ(NormalizeCategory("'Reasoning'"), "reasoning");
  EXPECT_EQ(NormalizeCategory("\\text{ Code }"), "code");
  EXPECT_EQ(NormalizeCategory("\\textbf{math}"), "math");
  EXPECT_EQ(NormalizeCategory("other"), "other");
}

TEST(CategoryTest, UnknownLabelsAreOther) {
  EXPECT_EQ(NormalizeCategory("poetry"), "other");
  EXPECT_EQ(NormalizeCategory(""), "other");
  EXPECT_EQ(NormalizeCategory("math and code"), "other");
  EXPECT_EQ(NormalizeCategory("mathematics"), "other");
}

TEST(CategoryTest, FromGeneratedText) {
  EXPECT_EQ(CategoryFromGenerated("This asks for a sum. \\boxed{Math}"), "math");
  EXPECT_EQ(CategoryFromGenerated("\\boxed{math} no wait \\boxed{ code }"), "code");
  EXPECT_EQ(CategoryFromGenerated("I think it is code"), "other");
  EXPECT_EQ(CategoryFromGenerated("\\boxed{history}"), "other");
}

TEST(ClassificationPromptTest, NamesEveryCategoryAndTheRequest) {
  std::string prompt = ClassificationPrompt("Write a Python function that reverses a list.");
  EXPECT_THAT(prompt, HasSubstr("Write a Python function that reverses a list."));
  EXPECT_THAT(prompt, HasSubstr("\\boxed{"));
  for (std::string_view c : kCategories) EXPECT_THAT(prompt, HasSubstr(std::string(c) + ":"));
  // The request is last, so that the instructions before it are the same text every time
  // (a worker's prefix cache computes them once).
  std::string other = ClassificationPrompt("What is 2 + 2?");
  const size_t request_at = prompt.find("Write a Python");
  EXPECT_EQ(prompt.substr(0, request_at), other.substr(0, request_at));
  EXPECT_EQ(prompt.substr(request_at + std::string("Write a Python function that reverses a list.").size()),
            "\n\"\"\"");
}

TEST(LabelScoringTest, CompletionsFollowCategoryOrder) {
  EXPECT_THAT(LabelCompletions(), ElementsAre("\\boxed{code}", "\\boxed{math}",
                                              "\\boxed{reasoning}", "\\boxed{other}"));
  // Every completion parses back to its own category.
  std::vector<std::string> completions = LabelCompletions();
  for (size_t i = 0; i < completions.size(); ++i) {
    EXPECT_EQ(CategoryFromGenerated(completions[i]), kCategories[i]);
  }
}

TEST(LabelScoringTest, ArgMaxTiesGoFirst) {
  EXPECT_EQ(ArgMax(std::vector<double>{-3, -1, -2, -5}), 1u);
  EXPECT_EQ(ArgMax(std::vector<double>{-1, -1, -1, -1}), 0u);
  EXPECT_EQ(ArgMax(std::vector<double>{-4, -2, -2, -9}), 1u);
  EXPECT_EQ(ArgMax(std::vector<double>{7}), 0u);
}

// ---------------------------------------------------------------- verifiers

bool Accepts(VerifierKind kind, const std::string& expected, const std::string& answer) {
  absl::StatusOr<Verifier> v = Verifier::Create(kind, expected);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() && v->Accepts(answer);
}

TEST(VerifierTest, Exact) {
  EXPECT_TRUE(Accepts(VerifierKind::kExact, "Paris", "Paris"));
  EXPECT_TRUE(Accepts(VerifierKind::kExact, " Paris\n", "\tParis  "));
  EXPECT_FALSE(Accepts(VerifierKind::kExact, "Paris", "paris"));
  EXPECT_FALSE(Accepts(VerifierKind::kExact, "Paris", "Paris, France"));
  EXPECT_TRUE(Accepts(VerifierKind::kExact, "", "  "));
}

TEST(VerifierTest, NumericTakesTheLastNumber) {
  EXPECT_TRUE(Accepts(VerifierKind::kNumeric, "42", "6 * 7 = 42"));
  EXPECT_TRUE(Accepts(VerifierKind::kNumeric, "#### 1234", "So the total is $1,234."));
  EXPECT_TRUE(Accepts(VerifierKind::kNumeric, "1234", "1,234"));
  EXPECT_TRUE(Accepts(VerifierKind::kNumeric, "0.5", "half is .5"));
  EXPECT_TRUE(Accepts(VerifierKind::kNumeric, "-3", "The temperature fell to -3 degrees"));
  EXPECT_TRUE(Accepts(VerifierKind::kNumeric, "2.50", "It costs 2.5"));
  EXPECT_TRUE(Accepts(VerifierKind::kNumeric, "1000000", "1000000.0000001"));  // within 1e-6
  EXPECT_FALSE(Accepts(VerifierKind::kNumeric, "1000", "1000.01"));
  EXPECT_FALSE(Accepts(VerifierKind::kNumeric, "42", "42 is wrong, it is 41"));
  EXPECT_FALSE(Accepts(VerifierKind::kNumeric, "42", "no number at all"));
  EXPECT_TRUE(Accepts(VerifierKind::kNumeric, "5", "pages 3-5"));  // the hyphen is no minus
  // A number too long for a double (infinity) used to equal anything (tests/fuzz/verifier_fuzz).
  EXPECT_FALSE(Accepts(VerifierKind::kNumeric, "5", "the answer is " + std::string(400, '9')));
}

TEST(VerifierTest, CategoryReadsTheClassificationAnswer) {
  EXPECT_TRUE(Accepts(VerifierKind::kCategory, "math", "\\boxed{math}"));
  EXPECT_TRUE(Accepts(VerifierKind::kCategory, "code", "It is about programs: \\boxed{\\text{Code}}."));
  EXPECT_TRUE(Accepts(VerifierKind::kCategory, "other", "no box at all"));  // the first pass reads "other"
  EXPECT_FALSE(Accepts(VerifierKind::kCategory, "math", "math"));          // the category must be boxed
  EXPECT_FALSE(Accepts(VerifierKind::kCategory, "reasoning", "\\boxed{math}"));
  auto bad = Verifier::Create(VerifierKind::kCategory, "poetry");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'poetry' is not a category"));
}

TEST(VerifierTest, KindNamesRoundTrip) {
  for (VerifierKind kind : {VerifierKind::kExact, VerifierKind::kNumeric, VerifierKind::kChoiceLetter,
                            VerifierKind::kRegex, VerifierKind::kCategory}) {
    auto parsed = ParseVerifierKind(VerifierKindName(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  auto bad = ParseVerifierKind("fuzzy");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'fuzzy'"));
}

TEST(VerifierTest, NumericParsing) {
  EXPECT_THAT(LastNumber("pages 3-5"), Optional(5.0));  // a hyphen after a digit is no sign
  EXPECT_THAT(LastNumber("x = -5"), Optional(-5.0));
  EXPECT_THAT(LastNumber("1,234,567.5 apples"), Optional(1234567.5));
  EXPECT_THAT(LastNumber("the list 1,2,3"), Optional(3.0));
  EXPECT_THAT(LastNumber("ends with a period 12."), Optional(12.0));
  EXPECT_EQ(LastNumber("none"), std::nullopt);
  EXPECT_TRUE(NumbersEqual(0, 0));
  EXPECT_TRUE(NumbersEqual(1e9, 1e9 + 1));
  EXPECT_FALSE(NumbersEqual(1, 1.00001));
}

TEST(VerifierTest, ChoiceLetter) {
  EXPECT_TRUE(Accepts(VerifierKind::kChoiceLetter, "B", "B"));
  EXPECT_TRUE(Accepts(VerifierKind::kChoiceLetter, "B", "(B) because the sky is blue"));
  EXPECT_TRUE(Accepts(VerifierKind::kChoiceLetter, "B", "Answer: B"));
  EXPECT_TRUE(
      Accepts(VerifierKind::kChoiceLetter, "C", "I first thought A, but the answer is (c)."));
  EXPECT_TRUE(Accepts(VerifierKind::kChoiceLetter, "(d)", "D. Photosynthesis"));
  EXPECT_TRUE(Accepts(VerifierKind::kChoiceLetter, "j", "Option J"));
  EXPECT_FALSE(Accepts(VerifierKind::kChoiceLetter, "B", "Answer: C"));
  EXPECT_FALSE(Accepts(VerifierKind::kChoiceLetter, "B", "Because of gravity"));  // no standalone
  EXPECT_FALSE(Accepts(VerifierKind::kChoiceLetter, "B", "nothing to choose"));
  EXPECT_THAT(ChoiceLetter("Both are wrong; (E) is right"), Optional('E'));
  EXPECT_EQ(ChoiceLetter("K is not a choice"), std::nullopt);
}

TEST(VerifierTest, Regex) {
  EXPECT_TRUE(Accepts(VerifierKind::kRegex, "\\bParis\\b", "It is Paris, of course."));
  EXPECT_TRUE(Accepts(VerifierKind::kRegex, "^def \\w+\\(", "def reverse(xs):\n  return xs[::-1]"));
  EXPECT_TRUE(Accepts(VerifierKind::kRegex, "4[0-9]", "about 45 or so"));
  EXPECT_FALSE(Accepts(VerifierKind::kRegex, "^Paris$", "It is Paris"));
  EXPECT_FALSE(Accepts(VerifierKind::kRegex, "[0-9]{3}", "12 and 34"));
}

// Client patterns over long answers: libstdc++'s std::regex backtracked exponentially on the
// first (minutes for 30 characters) and recursed once per character on the second (a stack
// overflow, killing the dispatcher, long before 1 MB). RE2 answers both in linear time.
TEST(VerifierTest, HostilePatternsOverLongAnswersAreAnswered) {
  EXPECT_FALSE(Accepts(VerifierKind::kRegex, "^(x+x+)+y$", std::string(5000, 'x')));
  std::string long_answer;
  for (int i = 0; i < 500000; ++i) long_answer += "ab";
  EXPECT_TRUE(Accepts(VerifierKind::kRegex, "^(a|b)*$", long_answer));
  EXPECT_FALSE(Accepts(VerifierKind::kRegex, "^(a|b)*c", long_answer));
}

TEST(VerifierTest, RegexPatternsAreBounded) {
  absl::StatusOr<Verifier> long_pattern =
      Verifier::Create(VerifierKind::kRegex, std::string(kMaxRegexPatternBytes + 1, 'a'));
  EXPECT_EQ(long_pattern.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(long_pattern.status().message()), HasSubstr("exceeds the limit of 1024"));
  EXPECT_TRUE(Verifier::Create(VerifierKind::kRegex, std::string(kMaxRegexPatternBytes, 'a')).ok());
  // Short, but its program would exceed the memory budget: refused, not compiled.
  absl::StatusOr<Verifier> huge =
      Verifier::Create(VerifierKind::kRegex, "((((a{100}){100}){100}){100})");
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(VerifierTest, BadExpectedAnswersAreInvalidArgument) {
  absl::StatusOr<Verifier> bad_regex = Verifier::Create(VerifierKind::kRegex, "(unclosed");
  EXPECT_EQ(bad_regex.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_regex.status().message()), HasSubstr("(unclosed"));
  EXPECT_EQ(Verifier::Create(VerifierKind::kRegex, "a{2,1}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Verifier::Create(VerifierKind::kNumeric, "forty-two").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Verifier::Create(VerifierKind::kChoiceLetter, "Z").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- CEM

double L1(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += std::fabs(a[i] - b[i]);
  return d;
}

// A stand-in for "accuracy on 10 examples": coarse steps in the distance to a hidden α, so
// that many candidates tie and the log-likelihood (smooth in the distance) decides.
Fitness Synthetic(const std::vector<double>& alpha, const std::vector<double>& hidden) {
  double d = L1(alpha, hidden);
  Fitness f;
  f.accuracy = std::floor(10 * std::max(0.0, 1 - d)) / 10;
  f.mean_logprob = -d;
  return f;
}

CemOptimizer RunCem(const CemOptions& options, const std::vector<double>& hidden, int generations) {
  absl::StatusOr<CemOptimizer> cem = CemOptimizer::Create(options);
  EXPECT_TRUE(cem.ok()) << cem.status();
  for (int g = 0; g < generations; ++g) {
    std::vector<Fitness> fitness;
    for (const Candidate& c : cem->Ask()) fitness.push_back(Synthetic(c.alpha, hidden));
    EXPECT_TRUE(cem->Tell(fitness).ok());
  }
  return *std::move(cem);
}

TEST(CemTest, ValidatesOptions) {
  EXPECT_EQ(CemOptimizer::Create({.num_experts = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CemOptimizer::Create({.num_experts = 2, .num_layers = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CemOptimizer::Create({.num_experts = 2, .population = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CemOptimizer::Create({.num_experts = 2, .elite_ratio = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CemTest, DefaultsFollowThePaper) {
  CemOptions o{.num_experts = 3};
  EXPECT_EQ(o.population, 32);
  EXPECT_DOUBLE_EQ(o.elite_ratio, 0.2);
  EXPECT_DOUBLE_EQ(o.initial_std, 0.5);
  CemOptimizer cem = *CemOptimizer::Create(o);
  EXPECT_THAT(cem.mean(), ElementsAre(1.0 / 3, 1.0 / 3, 1.0 / 3));
  EXPECT_THAT(cem.stddev(), ElementsAre(0.5, 0.5, 0.5));
  EXPECT_EQ(cem.elite_count(), 6);  // round(0.2 * 32)
}

TEST(CemTest, CandidatesAreBoundedAndNormalisedPerLayer) {
  CemOptimizer cem = *CemOptimizer::Create({.num_experts = 3, .num_layers = 4, .population = 50});
  const auto& candidates = cem.Ask();
  ASSERT_EQ(candidates.size(), 50u);
  for (const Candidate& c : candidates) {
    ASSERT_EQ(c.sample.size(), 12u);
    ASSERT_EQ(c.alpha.size(), 12u);
    for (double s : c.sample) {
      EXPECT_GE(s, 0.0);
      EXPECT_LE(s, 1.0);
    }
    for (int l = 0; l < 4; ++l) {
      double sum = c.alpha[3 * l] + c.alpha[3 * l + 1] + c.alpha[3 * l + 2];
      EXPECT_NEAR(sum, 1.0, 1e-12);
      for (int k = 0; k < 3; ++k) EXPECT_GE(c.alpha[3 * l + k], 0.0);
    }
  }
}

TEST(CemTest, ZeroRowBecomesUniform) {
  EXPECT_THAT(NormalizeRows(std::vector<double>{0, 0, 2, 6}, 2, 2),
              ElementsAre(0.5, 0.5, 0.25, 0.75));
}

TEST(CemTest, SameSeedSameCandidatesOtherSeedOthers) {
  std::vector<double> hidden = {0.7, 0.2, 0.1};
  CemOptimizer a = RunCem({.num_experts = 3, .seed = 7}, hidden, 3);
  CemOptimizer b = RunCem({.num_experts = 3, .seed = 7}, hidden, 3);
  CemOptimizer c = RunCem({.num_experts = 3, .seed = 8}, hidden, 3);
  EXPECT_EQ(a.best().alpha, b.best().alpha);
  EXPECT_EQ(a.mean(), b.mean());
  EXPECT_EQ(a.Ask()[5].sample, b.Ask()[5].sample);
  EXPECT_NE(a.Ask()[5].sample, c.Ask()[5].sample);
}

TEST(CemTest, ConvergesToAHiddenMixtureWithinTheDefaultBudget) {
  // 10 generations x 32 candidates, the Adapt defaults, across a few seeds and targets.
  const std::vector<std::vector<double>> targets = {
      {0.6, 0.3, 0.1}, {0.1, 0.1, 0.8}, {0.25, 0.25, 0.25, 0.25}, {0.5, 0.05, 0.4, 0.05}};
  for (const auto& hidden : targets) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      CemOptions o{.num_experts = static_cast<int>(hidden.size()), .seed = seed};
      CemOptimizer cem = RunCem(o, hidden, 10);
      double final_distance = L1(cem.best().alpha, hidden);
      EXPECT_LT(final_distance, 0.1) << "seed " << seed << " target[0] " << hidden[0];
      EXPECT_GE(cem.best_fitness().accuracy, 0.9);
    }
  }
}

TEST(CemTest, ConvergesPerLayer) {
  // Two layers that want different experts.
  std::vector<double> hidden = {0.8, 0.2, 0.3, 0.7};
  CemOptimizer cem = RunCem({.num_experts = 2, .num_layers = 2, .seed = 5}, hidden, 10);
  EXPECT_LT(L1(cem.best().alpha, hidden), 0.15);
}

TEST(CemTest, BestIsCarriedIntoTheNextGeneration) {
  CemOptimizer cem = *CemOptimizer::Create({.num_experts = 2, .population = 8, .seed = 3});
  std::vector<Candidate> first = cem.Ask();
  std::vector<Fitness> fitness(8, Fitness{.accuracy = 0.1, .mean_logprob = -5});
  fitness[5] = {.accuracy = 0.9, .mean_logprob = -5};
  ASSERT_TRUE(cem.Tell(fitness).ok());
  EXPECT_EQ(cem.best().sample, first[5].sample);
  const auto& second = cem.Ask();
  EXPECT_EQ(second[0].sample, first[5].sample);  // re-evaluated, not trusted
  EXPECT_NE(second[1].sample, first[5].sample);
  // Its re-evaluation can lose: the best is then whatever did best this time.
  std::vector<Fitness> again(8, Fitness{.accuracy = 0.2, .mean_logprob = -5});
  again[0] = {.accuracy = 0.1, .mean_logprob = -1};
  again[3] = {.accuracy = 0.3, .mean_logprob = -9};
  std::vector<double> winner = second[3].sample;
  ASSERT_TRUE(cem.Tell(again).ok());
  EXPECT_EQ(cem.best().sample, winner);
  EXPECT_DOUBLE_EQ(cem.best_fitness().accuracy, 0.3);
}

TEST(CemTest, EliteSetsMeanAndStd) {
  CemOptimizer cem = *CemOptimizer::Create(
      {.num_experts = 2, .population = 10, .elite_ratio = 0.2, .min_std = 0, .seed = 11});
  ASSERT_EQ(cem.elite_count(), 2);
  std::vector<Candidate> c = cem.Ask();
  std::vector<Fitness> fitness(10, Fitness{.accuracy = 0});
  fitness[2].accuracy = 1;
  fitness[7].accuracy = 1;
  ASSERT_TRUE(cem.Tell(fitness).ok());
  for (int i = 0; i < 2; ++i) {
    double m = (c[2].sample[i] + c[7].sample[i]) / 2;
    EXPECT_NEAR(cem.mean()[i], m, 1e-12);
    EXPECT_NEAR(cem.stddev()[i], std::fabs(c[2].sample[i] - c[7].sample[i]) / 2, 1e-12);
  }
}

TEST(CemTest, AccuracyTiesAreBrokenByLogLikelihood) {
  CemOptimizer cem = *CemOptimizer::Create({.num_experts = 3, .population = 5, .seed = 2});
  std::vector<Candidate> c = cem.Ask();
  std::vector<Fitness> fitness = {{0.5, -3.0}, {0.5, -1.0}, {0.4, 0.0}, {0.5, -2.0}, {0.1, 0.0}};
  ASSERT_TRUE(cem.Tell(fitness).ok());
  EXPECT_EQ(cem.best().sample, c[1].sample);
  EXPECT_TRUE(Better({0.5, -1}, {0.5, -2}));
  EXPECT_TRUE(Better({0.6, -9}, {0.5, -1}));
  EXPECT_FALSE(Better({0.5, -1}, {0.5, -1}));
}

TEST(CemTest, ExactTieKeepsTheIncumbent) {
  CemOptimizer cem = *CemOptimizer::Create({.num_experts = 2, .population = 4, .seed = 9});
  cem.Ask();
  ASSERT_TRUE(cem.Tell(std::vector<Fitness>{{1, -1}, {0, 0}, {0, 0}, {0, 0}}).ok());
  std::vector<double> incumbent = cem.best().sample;
  cem.Ask();
  ASSERT_TRUE(cem.Tell(std::vector<Fitness>{{1, -1}, {1, -1}, {1, -1}, {1, -1}}).ok());
  EXPECT_EQ(cem.best().sample, incumbent);
}

TEST(CemTest, TellChecksItsInput) {
  CemOptimizer cem = *CemOptimizer::Create({.num_experts = 2, .population = 4});
  EXPECT_EQ(cem.Tell(std::vector<Fitness>(4)).code(), absl::StatusCode::kFailedPrecondition);
  const auto& first = cem.Ask();
  EXPECT_EQ(&cem.Ask(), &first);  // Ask again before Tell: the same generation
  EXPECT_EQ(cem.Tell(std::vector<Fitness>(3)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cem.Tell(std::vector<Fitness>(4, Fitness{.accuracy = std::nan("")})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(cem.Tell(std::vector<Fitness>(4)).ok());
  EXPECT_EQ(cem.generation(), 1);
}

}  // namespace
}  // namespace t2::adapt
