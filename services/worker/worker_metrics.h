// The worker's Prometheus families (README.md, "Metrics"). Two kinds:
//   - recorded as things happen: each Generate call (time to first token, inter-token
//     latency, end-to-end and queue time, tokens, how it ended) and each adapter the expert
//     cache loads or unloads;
//   - read at each scrape from their source (StateCollector): the scheduler's queue, batch,
//     KV cache and prefix cache, the adapters loaded, how each was run (Σ′ compositions,
//     factored and merged rows), and the model's identity. Nothing is copied between scrapes,
//     so a gauge never lags what the engine reports.
// Adapter labels are the generator's adapter names ("base" for the base model), capped so
// that a stream of new versions or mixtures cannot grow the series without bound.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "expert_cache.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "t2/engine/generator.h"
#include "t2/metrics/label_cap.h"

namespace t2::worker {

// Adapter label values: more distinct adapters than this over a worker's life share "other".
inline constexpr size_t kAdapterLabelCap = 64;
// Calls that end before their adapter is known (bad input, an expert that does not exist).
inline constexpr std::string_view kUnresolvedAdapter = "unresolved";

class WorkerMetrics {
 public:
  explicit WorkerMetrics(prometheus::Registry& registry);

  // One Generate call, from its arrival to its end. Started and Tokens run on the scheduler
  // thread, the rest on the call's; the generator's on_done orders them.
  class Call {
   public:
    // The generator adapter the call resolved to ("" = the base model).
    void SetAdapter(const std::string& adapter);
    void Started(double queue_seconds);
    // `count` tokens arrived: the first ones are the time to first token, each later batch
    // an inter-token latency (its gap shared by its tokens).
    void Tokens(size_t count);
    // `finish_reason` is "eos" / "stop" / "length", or "none" for a call that failed.
    void Finished(grpc::StatusCode code, std::string_view finish_reason, int64_t prompt_tokens,
                  int64_t generated_tokens);

   private:
    friend class WorkerMetrics;
    explicit Call(WorkerMetrics* metrics) : metrics_(metrics), arrival_(absl::Now()) {}
    WorkerMetrics* metrics_;
    const absl::Time arrival_;
    std::string adapter_{kUnresolvedAdapter};
    absl::Time last_token_ = absl::InfinitePast();
    prometheus::Histogram* queue_ = nullptr;
    prometheus::Histogram* first_token_ = nullptr;
    prometheus::Histogram* inter_token_ = nullptr;
  };
  std::unique_ptr<Call> StartCall() { return std::unique_ptr<Call>(new Call(this)); }

  // Load time, failures and unloads of the expert cache's adapters.
  ExpertCache::Events CacheEvents();

  struct ModelInfo {
    std::string name, fingerprint, device, dtype;
  };
  // The scrape-time families over `generator` and `cache`, which must outlive the collector.
  static std::shared_ptr<prometheus::Collectable> StateCollector(const engine::Generator& generator,
                                                                 const ExpertCache& cache,
                                                                 ModelInfo model);

 private:
  std::string AdapterLabel(const std::string& adapter);

  metrics::LabelCap adapters_{kAdapterLabelCap};
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& queue_seconds_;
  prometheus::Family<prometheus::Histogram>& first_token_seconds_;
  prometheus::Family<prometheus::Histogram>& inter_token_seconds_;
  prometheus::Family<prometheus::Histogram>& request_seconds_;
  prometheus::Family<prometheus::Counter>& prompt_tokens_;
  prometheus::Family<prometheus::Counter>& generation_tokens_;
  prometheus::Family<prometheus::Histogram>& adapter_load_seconds_;
  prometheus::Counter& adapter_load_failures_;
  prometheus::Family<prometheus::Counter>& adapter_unloads_;
};

}  // namespace t2::worker
