// The cross-entropy method over expert mixture weights (SVF.md §3, few-shot adaptation).
//
// A candidate is a sample s in [0, 1]^(L×K) (K experts; L = 1, or one row per layer) drawn
// from independent normals N(mean, std) and clipped to [0, 1]; the mixture it stands for is
// α = s normalised to sum 1 in each row. The caller evaluates every candidate's α and reports
// a Fitness; the elite (the best elite_ratio of the population) sets the next mean and std.
// From the second generation on, the previous generation's best member is carried over as
// candidate 0 and evaluated again, so a lucky evaluation cannot stay best for free.
//
//   CemOptimizer cem = *CemOptimizer::Create({.num_experts = 3});
//   for (int g = 0; g < 10; ++g) {
//     const auto& candidates = cem.Ask();
//     std::vector<Fitness> fitness = Evaluate(candidates);
//     T2_RETURN_IF_ERROR(cem.Tell(fitness));
//   }
//   Use(cem.best().alpha);
//
// Not thread-safe; one optimiser per search. Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace t2::adapt {

struct CemOptions {
  int num_experts = 0;       // K >= 1
  int num_layers = 1;        // L >= 1: rows of α (1 = the same α for every layer)
  int population = 32;       // candidates per generation, >= 1
  double elite_ratio = 0.2;  // elite = max(1, round(elite_ratio * population))
  double initial_std = 0.5;  // the initial mean is 1/K
  // Lower bound on the std after an update: without it a coordinate whose elites all sit at a
  // bound of [0, 1] (clipping makes that common) would never move again.
  double min_std = 0.01;
  uint64_t seed = 0;

  absl::Status Validate() const;
};

// How well a candidate did. Higher accuracy wins; equal accuracies are broken by the mean
// log-likelihood of the correct answers (higher wins).
struct Fitness {
  double accuracy = 0;
  double mean_logprob = -std::numeric_limits<double>::infinity();
};

// True when `a` is strictly better than `b`.
bool Better(const Fitness& a, const Fitness& b);

struct Candidate {
  std::vector<double> sample;  // L×K, row-major by layer, each in [0, 1]
  std::vector<double> alpha;   // sample normalised per row; what the caller evaluates
};

// Normalises each row of a row-major L×K matrix to sum 1; a row of zeros becomes uniform.
std::vector<double> NormalizeRows(std::span<const double> values, int num_layers, int num_experts);

class CemOptimizer {
 public:
  static absl::StatusOr<CemOptimizer> Create(const CemOptions& options);

  // The candidates of the current generation (population of them). Calling Ask again before
  // Tell returns the same ones.
  const std::vector<Candidate>& Ask();
  // One fitness per candidate of the last Ask, in order. FailedPrecondition without a
  // pending Ask; InvalidArgument on a size mismatch or a NaN accuracy.
  absl::Status Tell(std::span<const Fitness> fitness);

  // The best member of the last told generation (valid after the first Tell).
  const Candidate& best() const { return best_; }
  const Fitness& best_fitness() const { return best_fitness_; }
  bool has_best() const { return has_best_; }
  int generation() const { return generation_; }  // generations told so far
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& stddev() const { return std_; }
  const CemOptions& options() const { return options_; }
  int elite_count() const;

 private:
  explicit CemOptimizer(const CemOptions& options);
  Candidate Sample();

  CemOptions options_;
  std::mt19937_64 rng_;
  std::vector<double> mean_;
  std::vector<double> std_;
  std::vector<Candidate> pending_;
  bool asked_ = false;
  int generation_ = 0;
  Candidate best_;
  Fitness best_fitness_;
  bool has_best_ = false;
};

}  // namespace t2::adapt
