// The publish gate: is a candidate expert better than what production runs now, on the same
// test examples with the same decoding? Paired, because both answer the same questions: only
// the questions where they disagree carry evidence (exact McNemar test). Torch-free.
#pragma once

#include <cstdint>
#include <vector>
#include <string>

#include "absl/status/statusor.h"

namespace t2::train {

struct GateOptions {
  // The smallest accuracy gain (absolute, 0.01 = one point) worth a new production version:
  // below it a rollout's risk buys too little.
  double min_gain = 0.01;
  // The largest one-sided p-value accepted: the chance that a candidate no better than the
  // current version wins at least this many of the disagreements. 0.05 is the usual bar;
  // with n >= 500 it lets a gain of about 2 points through when the two disagree on ~10%.
  double max_p = 0.05;
  absl::Status Validate() const;
};

struct GateResult {
  int64_t n = 0;
  double candidate_accuracy = 0, current_accuracy = 0;
  int64_t candidate_only = 0;  // questions only the candidate answers correctly
  int64_t current_only = 0;    // questions only the current version answers correctly
  double p_value = 1;          // exact one-sided McNemar
  bool publish = false;
  std::string reason;          // why, in words
};

// P(X >= k) for X ~ Binomial(n, 1/2): the exact one-sided McNemar p-value for k wins of
// the candidate among n disagreements (1 when n == 0).
double McNemarExactP(int64_t k, int64_t n);

// The 95% Wilson score interval of an accuracy of `right` out of `n` (n >= 1): what the
// benchmarks report beside each accuracy.
struct Interval {
  double low = 0, high = 0;
};
Interval Wilson95(int64_t right, int64_t n);

// Compares per-question correctness of the candidate and the current version (equal
// lengths, >= 1; InvalidArgument otherwise).
absl::StatusOr<GateResult> Decide(const std::vector<bool>& candidate, const std::vector<bool>& current,
                                  const GateOptions& options);

}  // namespace t2::train
