#include "adapt_runner.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "worker_calls.h"

namespace t2::dispatcher {
namespace {

using t2::v1::AdapterSpec;
using t2::v1::ExpertRef;

// FNV-1a: the same task searches the same way on every run and build.
uint64_t SeedFor(const std::string& task) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : task) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

t2::v1::Chat Question(const std::string& question) {
  t2::v1::Chat chat;
  t2::v1::ChatMessage* m = chat.add_messages();
  m->set_role("user");
  m->set_content(question);
  return chat;
}

}  // namespace

AdaptRunner::AdaptRunner(WorkerPool& pool, ExpertResolver& resolver, AdaptOptions options)
    : pool_(pool), resolver_(resolver), options_(options) {}

absl::StatusOr<std::vector<ExpertRef>> AdaptRunner::ResolveExperts(const AdaptPlan& plan,
                                                                   const CallScope& scope) const {
  std::vector<ExpertRef> experts;
  if (plan.experts.empty()) {
    T2_ASSIGN_OR_RETURN(experts, resolver_.AliasTargets({"cls"}, scope));
    if (experts.empty()) {
      return absl::FailedPreconditionError(
          "no experts to mix: the registry has no alias besides 'cls'; name experts in the "
          "request");
    }
    return experts;
  }
  for (const std::string& name : plan.experts) {
    T2_ASSIGN_OR_RETURN(ResolvedAdapter a, resolver_.ResolveExpert(name, scope));
    const ExpertRef& ref = a.spec.experts(0);
    // "math" and "math-svf@3" may be the same version; mixing it with itself is pointless.
    bool seen = std::any_of(experts.begin(), experts.end(), [&](const ExpertRef& r) {
      return r.name() == ref.name() && r.version() == ref.version();
    });
    if (!seen) experts.push_back(ref);
  }
  return experts;
}

absl::StatusOr<std::vector<adapt::Fitness>> AdaptRunner::Evaluate(
    const AdaptPlan& plan, const std::vector<AdapterSpec>& adapters, bool score_answers,
    const CallScope& scope) const {
  const size_t n = plan.examples.size();
  const size_t per_candidate = score_answers ? 2 * n : n;  // generations first, then scores
  const size_t group = options_.max_concurrent_candidates > 0
                           ? static_cast<size_t>(options_.max_concurrent_candidates)
                           : std::max<size_t>(1, adapters.size());
  std::vector<adapt::Fitness> fitness(adapters.size());
  for (size_t first = 0; first < adapters.size(); first += group) {
    const size_t last = std::min(adapters.size(), first + group);
    std::vector<BatchCall> calls;
    calls.reserve((last - first) * per_candidate);
    for (size_t c = first; c < last; ++c) {
      for (size_t e = 0; e < n; ++e) {
        t2::v1::WorkerGenerateRequest g;
        *g.mutable_chat() = Question(plan.examples[e].question());
        g.set_max_new_tokens(plan.max_new_tokens);
        *g.mutable_adapter() = adapters[c];  // default sampling: greedy
        calls.push_back(BatchCall{.request = std::move(g)});
      }
      if (!score_answers) continue;
      for (size_t e = 0; e < n; ++e) {
        t2::v1::ScoreRequest s;
        *s.mutable_chat() = Question(plan.examples[e].question());
        s.add_completions(plan.examples[e].answer());
        *s.mutable_adapter() = adapters[c];
        calls.push_back(BatchCall{.request = std::move(s)});
      }
    }
    T2_RETURN_IF_ERROR(
        RunBatch(pool_, calls, scope,
                 {.max_in_flight = pool_.BatchWindow(), .max_attempts = options_.max_attempts}));
    for (size_t c = first; c < last; ++c) {
      const BatchCall* base = calls.data() + (c - first) * per_candidate;
      int correct = 0;
      for (size_t e = 0; e < n; ++e) correct += plan.verifiers[e].Accepts(base[e].text) ? 1 : 0;
      adapt::Fitness& f = fitness[c];
      f.accuracy = static_cast<double>(correct) / static_cast<double>(n);
      f.mean_logprob = 0;
      if (!score_answers) continue;
      double sum = 0;
      for (size_t e = 0; e < n; ++e) {
        const t2::v1::ScoreResponse& s = base[n + e].scored;
        if (s.completions_size() != 1) {
          return absl::InternalError(absl::StrCat("a worker returned ", s.completions_size(),
                                                  " scores for one completion"));
        }
        sum += s.completions(0).logprob() / std::max(1, s.completions(0).tokens());
      }
      f.mean_logprob = sum / static_cast<double>(n);
    }
  }
  return fitness;
}

absl::StatusOr<t2::v1::AdaptResponse> AdaptRunner::Run(const AdaptPlan& plan,
                                                       const CallScope& scope) const {
  const auto start = std::chrono::steady_clock::now();
  T2_ASSIGN_OR_RETURN(std::vector<ExpertRef> experts, ResolveExperts(plan, scope));
  const int k = static_cast<int>(experts.size());

  int layers = 1;
  if (plan.per_layer) {
    layers = pool_.NumLayers();
    if (layers == 0) {
      T2_ASSIGN_OR_RETURN(t2::v1::WorkerInfo info, FetchInfo(pool_, scope));
      layers = info.num_layers();
    }
    if (layers < 1)
      return absl::FailedPreconditionError("per_layer: the workers report no layer count");
  }

  const bool score_answers = plan.verifier != adapt::VerifierKind::kRegex;
  const int n = static_cast<int>(plan.examples.size());
  int64_t evaluations = 0;

  T2_ASSIGN_OR_RETURN(std::vector<adapt::Fitness> base,
                      Evaluate(plan, {AdapterSpec()}, false, scope));
  evaluations += n;

  // One expert leaves nothing to search: every candidate normalises to α = 1.
  const int population = k == 1 ? 1 : plan.population;
  const int generations = k == 1 ? 1 : plan.generations;
  T2_ASSIGN_OR_RETURN(adapt::CemOptimizer cem,
                      adapt::CemOptimizer::Create({.num_experts = k,
                                                   .num_layers = layers,
                                                   .population = population,
                                                   .seed = SeedFor(plan.task)}));
  auto spec_of = [&](const adapt::Candidate& c) {
    AdapterSpec spec;
    for (const ExpertRef& e : experts) *spec.add_experts() = e;
    for (double a : c.alpha) spec.add_alpha(a);
    spec.set_per_layer(plan.per_layer);
    return spec;
  };
  for (int g = 0; g < generations; ++g) {
    std::vector<AdapterSpec> specs;
    for (const adapt::Candidate& c : cem.Ask()) specs.push_back(spec_of(c));
    T2_ASSIGN_OR_RETURN(std::vector<adapt::Fitness> fitness,
                        Evaluate(plan, specs, score_answers, scope));
    evaluations += static_cast<int64_t>(specs.size()) * n;
    T2_RETURN_IF_ERROR(cem.Tell(fitness));
    LogInfo(absl::StrFormat(
        "adapt %s: generation %d/%d, best accuracy %.3f (mean log p %.3f), base %.3f", plan.task,
        g + 1, generations, cem.best_fitness().accuracy, cem.best_fitness().mean_logprob,
        base[0].accuracy));
  }

  t2::v1::Mixture mixture;
  mixture.set_name(plan.task);
  *mixture.mutable_spec() = spec_of(cem.best());
  mixture.set_source(
      absl::StrFormat("cem: %d generations x %d, %d examples, best accuracy %.3f (base %.3f)",
                      generations, population, n, cem.best_fitness().accuracy, base[0].accuracy));
  T2_ASSIGN_OR_RETURN(t2::v1::Mixture stored, resolver_.PutMixture(mixture, scope));

  t2::v1::AdaptResponse response;
  response.set_task(plan.task);
  *response.mutable_spec() = stored.has_spec() ? stored.spec() : mixture.spec();
  response.set_best_accuracy(cem.best_fitness().accuracy);
  response.set_base_accuracy(base[0].accuracy);
  response.set_evaluations(static_cast<int32_t>(evaluations));
  response.set_duration_ms(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return response;
}

}  // namespace t2::dispatcher
