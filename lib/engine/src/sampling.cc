#include "t2/engine/sampling.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace t2::engine {

absl::Status SamplingParams::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0.0f || temperature > 100.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.temperature must be in [0, 100], got ", temperature));
  }
  if (top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.top_k must be >= 0, got ", top_k));
  }
  if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.top_p must be in (0, 1], got ", top_p));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed.has_value() ? *params.seed : std::random_device{}()) {}

int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

float LogProbability(std::span<const float> logits, int32_t token) {
  double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  return static_cast<float>(static_cast<double>(logits[token]) - max - std::log(sum));
}

int32_t Sampler::Sample(std::span<const float> logits) {
  if (params_.greedy()) return Argmax(logits);
  // Candidates sorted by logit, descending; ties keep the lower id first (stable).
  scratch_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    scratch_[i] = {logits[i] / params_.temperature, static_cast<int32_t>(i)};
  }
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = scratch_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(scratch_.begin(), scratch_.begin() + keep, scratch_.end(), by_logit);
  } else {
    std::sort(scratch_.begin(), scratch_.end(), by_logit);
  }
  // Probabilities of the kept candidates.
  const double max = scratch_[0].first;
  std::vector<double> probs(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += probs[i] = std::exp(scratch_[i].first - max);
  if (params_.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p (at least one token), as HF's TopPLogitsWarper.
    double cumulative = 0;
    size_t nucleus = 0;
    while (nucleus < keep) {
      cumulative += probs[nucleus++] / total;
      if (cumulative >= params_.top_p) break;
    }
    keep = nucleus;
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += probs[i];
  }
  double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    u -= probs[i];
    if (u < 0) return scratch_[i].second;
  }
  return scratch_[keep - 1].second;
}

}  // namespace t2::engine
