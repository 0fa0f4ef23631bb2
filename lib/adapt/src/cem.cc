#include "t2/adapt/cem.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace t2::adapt {

absl::Status CemOptions::Validate() const {
  if (num_experts < 1) return absl::InvalidArgumentError("cem: num_experts must be >= 1");
  if (num_layers < 1) return absl::InvalidArgumentError("cem: num_layers must be >= 1");
  if (population < 1) return absl::InvalidArgumentError("cem: population must be >= 1");
  if (!(elite_ratio > 0 && elite_ratio <= 1)) {
    return absl::InvalidArgumentError("cem: elite_ratio must be in (0, 1]");
  }
  if (!(initial_std >= 0) || !(min_std >= 0)) {
    return absl::InvalidArgumentError("cem: initial_std and min_std must be >= 0");
  }
  return absl::OkStatus();
}

bool Better(const Fitness& a, const Fitness& b) {
  if (a.accuracy != b.accuracy) return a.accuracy > b.accuracy;
  return a.mean_logprob > b.mean_logprob;
}

std::vector<double> NormalizeRows(std::span<const double> values, int num_layers, int num_experts) {
  std::vector<double> out(values.begin(), values.end());
  for (int l = 0; l < num_layers; ++l) {
    double* row = out.data() + static_cast<size_t>(l) * num_experts;
    double sum = std::accumulate(row, row + num_experts, 0.0);
    for (int k = 0; k < num_experts; ++k) row[k] = sum > 0 ? row[k] / sum : 1.0 / num_experts;
  }
  return out;
}

absl::StatusOr<CemOptimizer> CemOptimizer::Create(const CemOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  return CemOptimizer(options);
}

CemOptimizer::CemOptimizer(const CemOptions& options)
    : options_(options),
      rng_(options.seed),
      mean_(static_cast<size_t>(options.num_layers) * options.num_experts,
            1.0 / options.num_experts),
      std_(mean_.size(), options.initial_std) {}

int CemOptimizer::elite_count() const {
  long n = std::lround(options_.elite_ratio * options_.population);
  return static_cast<int>(std::clamp<long>(n, 1, options_.population));
}

Candidate CemOptimizer::Sample() {
  Candidate c;
  c.sample.resize(mean_.size());
  for (size_t i = 0; i < mean_.size(); ++i) {
    // std::normal_distribution's output is implementation-defined; the Box-Muller draw below
    // keeps a seed's candidates the same across standard libraries.
    double u1 = (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53;
    double u2 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    c.sample[i] = std::clamp(mean_[i] + std_[i] * z, 0.0, 1.0);
  }
  c.alpha = NormalizeRows(c.sample, options_.num_layers, options_.num_experts);
  return c;
}

const std::vector<Candidate>& CemOptimizer::Ask() {
  if (asked_) return pending_;
  pending_.clear();
  pending_.reserve(options_.population);
  if (has_best_) pending_.push_back(best_);
  while (static_cast<int>(pending_.size()) < options_.population) pending_.push_back(Sample());
  asked_ = true;
  return pending_;
}

absl::Status CemOptimizer::Tell(std::span<const Fitness> fitness) {
  if (!asked_) return absl::FailedPreconditionError("cem: Tell without a pending Ask");
  if (fitness.size() != pending_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("cem: ", fitness.size(), " fitness values for ",
                                                   pending_.size(), " candidates"));
  }
  for (const Fitness& f : fitness) {
    if (std::isnan(f.accuracy) || std::isnan(f.mean_logprob)) {
      return absl::InvalidArgumentError("cem: fitness is NaN");
    }
  }
  std::vector<size_t> order(pending_.size());
  std::iota(order.begin(), order.end(), 0);
  // Stable: among exact ties the earlier candidate ranks first, which is the carried-over
  // best member, so the incumbent is only replaced by something strictly better.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return Better(fitness[a], fitness[b]); });

  const int elites = elite_count();
  const size_t dims = mean_.size();
  for (size_t i = 0; i < dims; ++i) {
    double sum = 0;
    for (int e = 0; e < elites; ++e) sum += pending_[order[e]].sample[i];
    double mean = sum / elites;
    double var = 0;
    for (int e = 0; e < elites; ++e) {
      double d = pending_[order[e]].sample[i] - mean;
      var += d * d;
    }
    mean_[i] = mean;
    std_[i] = std::max(std::sqrt(var / elites), options_.min_std);
  }
  best_ = pending_[order[0]];
  best_fitness_ = fitness[order[0]];
  has_best_ = true;
  asked_ = false;
  ++generation_;
  return absl::OkStatus();
}

}  // namespace t2::adapt
