// Choosing the next token from a row of logits: greedy, temperature, top-k, top-p, seeded.
//
// The order and semantics follow HF transformers' logits warpers (temperature, then top-k,
// then top-p). Each request draws from its own generator seeded from `seed`, so its samples
// depend only on its own logits, never on what else shares the batch.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>

#include "absl/status/status.h"

namespace t2::engine {

// Temperatures below this decode greedily. logits / T overflows float for T near 1e-38 (and the
// sampler then returned the least likely kept token); long before that the softmax is one-hot
// but for exact ties, so argmax is what such a temperature asks for.
inline constexpr float kMinTemperature = 1e-4f;

struct SamplingParams {
  float temperature = 0.0f;  // below kMinTemperature (0 included): greedy; at most 100
  int32_t top_k = 0;         // 0: off; otherwise keep the k most likely tokens
  float top_p = 1.0f;        // in (0, 1]; 1: off
  std::optional<uint64_t> seed;  // unset: a random seed per request

  // InvalidArgumentError naming the field ("sampling.top_p must be in (0, 1], got 1.5").
  absl::Status Validate() const;
  bool greedy() const { return temperature < kMinTemperature; }
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // The chosen token id. `logits` is one row over the vocabulary; it is not modified.
  int32_t Sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> scratch_;
};

// Index of the largest value (the first one on ties, as torch.argmax on CPU).
int32_t Argmax(std::span<const float> logits);
// log softmax(logits)[token], computed in double for stability.
float LogProbability(std::span<const float> logits, int32_t token);

}  // namespace t2::engine
