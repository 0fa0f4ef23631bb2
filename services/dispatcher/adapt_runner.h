// Few-shot adaptation (Dispatcher.Adapt): CEM over the mixture weights of K experts, each
// candidate scored by the fraction of solved examples whose greedy answers its verifier
// accepts, ties broken by the mean per-token log-likelihood of the expected answers (one
// Worker.Score per candidate and example; skipped for REGEX, whose expected answer is a
// pattern, not a text). The base model is evaluated once for comparison. The best mixture is
// stored with Registry.PutMixture under the task name.
//
// Every generation is evaluated as one batch: all population x examples answers are in
// flight together (within the pool's BatchWindow), so the workers' continuous batching sees
// the whole population at once. AdaptOptions::max_concurrent_candidates = 1 evaluates one
// candidate at a time instead, for benchmarks to compare.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "call_scope.h"
#include "expert_resolver.h"
#include "t2/adapt/cem.h"
#include "t2/v1/dispatcher.pb.h"
#include "validation.h"
#include "worker_pool.h"

namespace t2::dispatcher {

struct AdaptOptions {
  int max_concurrent_candidates = 0;  // 0: the whole population at once
  int max_attempts = 5;               // per worker call (UNAVAILABLE, RESOURCE_EXHAUSTED)
};

class AdaptRunner {
 public:
  AdaptRunner(WorkerPool& pool, ExpertResolver& resolver, AdaptOptions options);

  absl::StatusOr<t2::v1::AdaptResponse> Run(const AdaptPlan& plan, const CallScope& scope) const;

  // The fitness of each adapter on the plan's examples (exposed for tests and benchmarks).
  // `score_answers`: also compute the log-likelihood tie-break.
  absl::StatusOr<std::vector<adapt::Fitness>> Evaluate(
      const AdaptPlan& plan, const std::vector<t2::v1::AdapterSpec>& adapters, bool score_answers,
      const CallScope& scope) const;

 private:
  absl::StatusOr<std::vector<t2::v1::ExpertRef>> ResolveExperts(const AdaptPlan& plan,
                                                                const CallScope& scope) const;

  WorkerPool& pool_;
  ExpertResolver& resolver_;
  AdaptOptions options_;
};

}  // namespace t2::dispatcher
