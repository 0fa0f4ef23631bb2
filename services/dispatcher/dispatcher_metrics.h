// The dispatcher's Prometheus families (README.md, "Metrics"): each Generate, GenerateStream
// and Classify call by strategy, chosen category and status code; the first pass's duration,
// its share of the request and its confidence; Adapt runs; and, read at each scrape, the
// workers' health, calls moved off an unavailable worker and the resolver cache's hits.
// Strategy and category labels come from fixed sets (the proto's strategies, the four
// categories), so clients cannot add series.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "expert_resolver.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "t2/v1/dispatcher.pb.h"
#include "worker_pool.h"

namespace t2::dispatcher {

// The strategy label of a request: the proto's strategy names, "none" when unset.
std::string_view StrategyLabel(const t2::v1::Adaptation& adaptation);

// The winning label's probability among the labels scored (softmax of their log-probs); none
// when there are none (GENERATE mode).
std::optional<double> FirstPassConfidence(const std::map<std::string, double>& label_logprobs);

class DispatcherMetrics {
 public:
  explicit DispatcherMetrics(prometheus::Registry& registry);

  // What a Generate / GenerateStream / Classify call learned on its way; filled as it goes.
  struct Call {
    std::string_view strategy = "none";
    std::string category = "none";             // set by a classifying first pass
    std::optional<double> first_pass_seconds;  // set once the first pass ran
    std::optional<double> confidence;
    bool generates = true;  // false for Classify: no second pass
  };
  void Record(const Call& call, grpc::StatusCode code, double seconds);
  void RecordAdapt(grpc::StatusCode code, double seconds, int64_t evaluations);

  // The pool's and resolver's state at each scrape; both must outlive the collector.
  static std::shared_ptr<prometheus::Collectable> StateCollector(const WorkerPool& pool,
                                                                 const ExpertResolver& resolver);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& first_pass_seconds_;
  prometheus::Family<prometheus::Histogram>& first_pass_share_;
  prometheus::Family<prometheus::Histogram>& first_pass_confidence_;
  prometheus::Family<prometheus::Counter>& adapt_runs_;
  prometheus::Histogram& adapt_seconds_;
  prometheus::Counter& adapt_evaluations_;
};

}  // namespace t2::dispatcher
