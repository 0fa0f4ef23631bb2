// Checks of the dispatcher's own request fields, run before any work; each error is
// INVALID_ARGUMENT naming the field. Fields the worker owns (max_new_tokens, sampling, stop,
// the input's content for a second pass) are left to the worker, whose INVALID_ARGUMENT is
// passed through unchanged: one set of rules, in one place. The exception is the input of a
// request the dispatcher itself classifies, which must have text to classify.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/adapt/verifier.h"
#include "t2/v1/dispatcher.pb.h"

namespace t2::dispatcher {

// Bounds of Adapt's fields (AdaptRequest documents the defaults).
inline constexpr int kMaxExamples = 64;
inline constexpr int kDefaultGenerations = 10;
inline constexpr int kMaxGenerations = 100;
inline constexpr int kDefaultPopulation = 32;
inline constexpr int kMaxPopulation = 256;
inline constexpr int kDefaultAnswerTokens = 64;
inline constexpr int kMaxAnswerTokens = 4096;
// population x generations x examples: generated answers one Adapt may cost.
inline constexpr int64_t kMaxEvaluations = 200000;

absl::Status ValidateAdaptation(const t2::v1::Adaptation& adaptation);
absl::Status ValidateGenerateRequest(const t2::v1::GenerateRequest& request);
absl::Status ValidateClassifyRequest(const t2::v1::ClassifyRequest& request);

// An AdaptRequest with defaults filled in and one verifier per example.
struct AdaptPlan {
  std::string task;
  std::vector<t2::v1::SolvedExample> examples;
  std::vector<adapt::Verifier> verifiers;  // one per example
  adapt::VerifierKind verifier = adapt::VerifierKind::kExact;
  std::vector<std::string> experts;  // as asked; empty: every alias except "cls"
  int generations = kDefaultGenerations;
  int population = kDefaultPopulation;
  int max_new_tokens = kDefaultAnswerTokens;
  bool per_layer = false;
};

absl::StatusOr<AdaptPlan> ValidateAdaptRequest(const t2::v1::AdaptRequest& request);

}  // namespace t2::dispatcher
