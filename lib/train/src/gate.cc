#include "t2/train/gate.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace t2::train {

absl::Status GateOptions::Validate() const {
  if (!std::isfinite(min_gain) || min_gain < 0 || min_gain > 1) {
    return absl::InvalidArgumentError(absl::StrCat("min_gain must be in [0, 1], got ", min_gain));
  }
  if (!std::isfinite(max_p) || max_p <= 0 || max_p > 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_p must be in (0, 1], got ", max_p));
  }
  return absl::OkStatus();
}

double McNemarExactP(int64_t k, int64_t n) {
  if (n <= 0 || k <= 0) return 1.0;
  if (k > n) return 0.0;
  // Sum of C(n, i) / 2^n for i = k..n in log space (n can be in the thousands).
  double total = 0;
  for (int64_t i = k; i <= n; ++i) {
    const double log_term = std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(i) + 1) -
                            std::lgamma(static_cast<double>(n - i) + 1) - static_cast<double>(n) * std::log(2.0);
    total += std::exp(log_term);
  }
  return std::min(1.0, total);
}

Interval Wilson95(int64_t right, int64_t n) {
  if (n <= 0) return {0, 1};
  const double z = 1.959963984540054, nn = static_cast<double>(n), p = static_cast<double>(right) / nn;
  const double center = (p + z * z / (2 * nn)) / (1 + z * z / nn);
  const double half = z * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / (1 + z * z / nn);
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

absl::StatusOr<GateResult> Decide(const std::vector<bool>& candidate, const std::vector<bool>& current,
                                  const GateOptions& options) {
  if (auto s = options.Validate(); !s.ok()) return s;
  if (candidate.empty() || candidate.size() != current.size()) {
    return absl::InvalidArgumentError(absl::StrCat("gate: ", candidate.size(), " candidate and ", current.size(),
                                                   " current results; need the same number, at least one"));
  }
  GateResult g;
  g.n = static_cast<int64_t>(candidate.size());
  int64_t right_candidate = 0, right_current = 0;
  for (size_t i = 0; i < candidate.size(); ++i) {
    right_candidate += candidate[i] ? 1 : 0;
    right_current += current[i] ? 1 : 0;
    if (candidate[i] && !current[i]) ++g.candidate_only;
    if (!candidate[i] && current[i]) ++g.current_only;
  }
  g.candidate_accuracy = static_cast<double>(right_candidate) / static_cast<double>(g.n);
  g.current_accuracy = static_cast<double>(right_current) / static_cast<double>(g.n);
  g.p_value = McNemarExactP(g.candidate_only, g.candidate_only + g.current_only);
  const double gain = g.candidate_accuracy - g.current_accuracy;
  // A small epsilon: 0.01 written as a difference of two fractions may land just below 0.01.
  const bool enough_gain = gain >= options.min_gain - 1e-12;
  const bool significant = g.p_value < options.max_p;
  g.publish = enough_gain && significant;
  g.reason = absl::StrFormat("accuracy %.4f vs %.4f (gain %+.4f, need >= %.4f), p = %.4g (need < %.4g) on n = %d%s",
                             g.candidate_accuracy, g.current_accuracy, gain, options.min_gain, g.p_value,
                             options.max_p, g.n,
                             g.publish ? ": publish" : (enough_gain ? ": not significant" : ": gain too small"));
  return g;
}

}  // namespace t2::train
