#include "dispatcher_metrics.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "t2/metrics/buckets.h"
#include "t2/metrics/snapshot.h"
#include "t2/rpc/server_metrics.h"

namespace t2::dispatcher {
namespace {

using t2::v1::Adaptation;

// Fractions (a share of the request, a probability): 0.05 steps where a first pass's share
// and a confident choice live, finer near 1.
const std::vector<double>& RatioBuckets() {
  static const std::vector<double> buckets = {0.01, 0.02, 0.05, 0.1, 0.2,  0.3,  0.4, 0.5,
                                              0.6,  0.7,  0.8,  0.9, 0.95, 0.99, 1};
  return buckets;
}

class PoolCollector final : public prometheus::Collectable {
 public:
  PoolCollector(const WorkerPool& pool, const ExpertResolver& resolver)
      : pool_(pool), resolver_(resolver) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using metrics::SnapshotFamily;
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    std::map<std::string, int> by_health = {{"serving", 0}, {"not_serving", 0}, {"unknown", 0}};
    for (const auto& w : pool_.Snapshot()) {
      switch (w.health) {
        case WorkerPool::Health::kServing:
          ++by_health["serving"];
          break;
        case WorkerPool::Health::kNotServing:
          ++by_health["not_serving"];
          break;
        case WorkerPool::Health::kUnknown:
          ++by_health["unknown"];
          break;
      }
    }
    SnapshotFamily workers(out, "t2_dispatcher_workers", "Workers by their last health check",
                           MetricType::Gauge);
    for (const auto& [health, n] : by_health) workers.Add(n, {{"health", health}});
    SnapshotFamily(out, "t2_dispatcher_worker_retries_total",
                   "Calls moved to another worker because theirs was unavailable",
                   MetricType::Counter)
        .Add(static_cast<double>(pool_.unavailable_reports()));
    const ExpertResolver::Stats s = resolver_.stats();
    SnapshotFamily(
        out, "t2_dispatcher_resolver_lookups_total",
        "Expert, alias and mixture lookups, answered from the cache (hit) or the registry (miss)",
        MetricType::Counter)
        .Add(static_cast<double>(s.hits), {{"result", "hit"}})
        .Add(static_cast<double>(s.misses), {{"result", "miss"}});
    return out;
  }

 private:
  const WorkerPool& pool_;
  const ExpertResolver& resolver_;
};

}  // namespace

std::string_view StrategyLabel(const Adaptation& adaptation) {
  switch (adaptation.strategy_case()) {
    case Adaptation::STRATEGY_NOT_SET:
    case Adaptation::kNone:
      return "none";
    case Adaptation::kExpert:
      return "expert";
    case Adaptation::kMixture:
      return "mixture";
    case Adaptation::kPrompt:
      return "prompt";
    case Adaptation::kClassifierExpert:
      return "classifier_expert";
    case Adaptation::kFewShotTask:
      return "few_shot";
  }
  return "none";
}

std::optional<double> FirstPassConfidence(const std::map<std::string, double>& label_logprobs) {
  if (label_logprobs.empty()) return std::nullopt;
  double best = -INFINITY;
  for (const auto& [label, lp] : label_logprobs) best = std::max(best, lp);
  if (!std::isfinite(best)) return std::nullopt;
  double total = 0;  // relative to the best, so that no exp underflows to 0/0
  for (const auto& [label, lp] : label_logprobs) total += std::exp(lp - best);
  return 1.0 / total;
}

DispatcherMetrics::DispatcherMetrics(prometheus::Registry& r)
    : requests_(prometheus::BuildCounter()
                    .Name("t2_dispatcher_requests_total")
                    .Help("Generate, GenerateStream and Classify calls by strategy, chosen "
                          "category and status code")
                    .Register(r)),
      first_pass_seconds_(prometheus::BuildHistogram()
                              .Name("t2_dispatcher_first_pass_seconds")
                              .Help("The first pass and the adapter's resolution")
                              .Register(r)),
      first_pass_share_(prometheus::BuildHistogram()
                            .Name("t2_dispatcher_first_pass_share_ratio")
                            .Help("The first pass's share of a generating call's time")
                            .Register(r)),
      first_pass_confidence_(
          prometheus::BuildHistogram()
              .Name("t2_dispatcher_first_pass_confidence_ratio")
              .Help("The chosen category's probability among the labels (label scoring)")
              .Register(r)),
      adapt_runs_(prometheus::BuildCounter()
                      .Name("t2_dispatcher_adapt_runs_total")
                      .Help("Adapt (few-shot CEM) calls by status code")
                      .Register(r)),
      adapt_seconds_(prometheus::BuildHistogram()
                         .Name("t2_dispatcher_adapt_seconds")
                         .Help("Adapt calls that succeeded, from arrival to the stored mixture")
                         .Register(r)
                         .Add({}, metrics::LatencyBuckets())),
      adapt_evaluations_(prometheus::BuildCounter()
                             .Name("t2_dispatcher_adapt_evaluations_total")
                             .Help("Answers generated to score CEM candidates")
                             .Register(r)
                             .Add({})) {
  adapt_runs_.Add({{"code", "OK"}});  // a series from the start, so increase() sees the first run
}

void DispatcherMetrics::Record(const Call& call, grpc::StatusCode code, double seconds) {
  const std::string strategy(call.strategy);
  requests_
      .Add(
          {{"strategy", strategy}, {"category", call.category}, {"code", rpc::GrpcCodeLabel(code)}})
      .Increment();
  if (!call.first_pass_seconds.has_value()) return;
  first_pass_seconds_.Add({{"strategy", strategy}}, metrics::LatencyBuckets())
      .Observe(*call.first_pass_seconds);
  if (call.confidence.has_value()) {
    first_pass_confidence_.Add({{"strategy", strategy}}, RatioBuckets()).Observe(*call.confidence);
  }
  if (call.generates && code == grpc::StatusCode::OK && seconds > 0) {
    first_pass_share_.Add({{"strategy", strategy}}, RatioBuckets())
        .Observe(std::min(1.0, *call.first_pass_seconds / seconds));
  }
}

void DispatcherMetrics::RecordAdapt(grpc::StatusCode code, double seconds, int64_t evaluations) {
  adapt_runs_.Add({{"code", rpc::GrpcCodeLabel(code)}}).Increment();
  if (code == grpc::StatusCode::OK) adapt_seconds_.Observe(seconds);
  if (evaluations > 0) adapt_evaluations_.Increment(static_cast<double>(evaluations));
}

std::shared_ptr<prometheus::Collectable> DispatcherMetrics::StateCollector(
    const WorkerPool& pool, const ExpertResolver& resolver) {
  return std::make_shared<PoolCollector>(pool, resolver);
}

}  // namespace t2::dispatcher
