#include "worker_metrics.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "t2/metrics/buckets.h"
#include "t2/metrics/snapshot.h"
#include "t2/rpc/server_metrics.h"

namespace t2::worker {
namespace {

constexpr std::string_view kBaseAdapter = "base";

prometheus::Family<prometheus::Counter>& Counter(prometheus::Registry& r, const std::string& name,
                                                 const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Histogram>& Histogram(prometheus::Registry& r,
                                                     const std::string& name,
                                                     const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

std::string EngineAdapterLabel(const std::string& adapter) {
  return adapter.empty() ? std::string(kBaseAdapter) : adapter;
}

class EngineStateCollector final : public prometheus::Collectable {
 public:
  EngineStateCollector(const engine::Generator& generator, const ExpertCache& cache,
                       WorkerMetrics::ModelInfo model)
      : generator_(generator), cache_(cache), model_(std::move(model)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    const engine::SchedulerStats s = generator_.scheduler_stats();
    std::vector<prometheus::MetricFamily> out;
    auto gauge = [&](const char* name, const char* help, double value) {
      metrics::SnapshotFamily(out, name, help, MetricType::Gauge).Add(value);
    };
    auto counter = [&](const char* name, const char* help, double value) {
      metrics::SnapshotFamily(out, name, help, MetricType::Counter).Add(value);
    };
    gauge("t2_worker_running_requests", "Sequences in the running batch", s.active);
    gauge("t2_worker_waiting_requests", "Requests queued for a batch slot", s.queued);
    gauge("t2_worker_max_batch_size", "The most sequences decoded together (--max-batch-size)",
          s.slots);
    gauge("t2_worker_max_waiting_requests",
          "Queued requests beyond the free slots before RESOURCE_EXHAUSTED (--max-queue)",
          s.max_queue);
    counter("t2_worker_decode_steps_total", "Decode steps run", static_cast<double>(s.steps));
    counter("t2_worker_decode_step_sequences_total",
            "Sequences over all decode steps (divided by the steps: the mean batch size)",
            static_cast<double>(s.step_sequences));
    gauge("t2_worker_kv_cache_bytes", "Memory held by the running batch's keys and values",
          static_cast<double>(s.kv_cache_bytes));
    gauge("t2_worker_kv_cache_limit_bytes",
          "The KV cache at every batch slot and the longest context",
          static_cast<double>(s.kv_cache_limit_bytes));
    gauge("t2_worker_prefix_cache_bytes", "Memory held by the prefix cache",
          static_cast<double>(s.prefix_cache_bytes));
    counter("t2_worker_prefix_cache_queries_total", "Prompts looked up in the prefix cache",
            static_cast<double>(s.prefix_lookups));
    counter("t2_worker_prefix_cache_hits_total", "Prompts that reused a cached beginning",
            static_cast<double>(s.prefix_hits));
    counter("t2_worker_prefix_cache_reused_tokens_total",
            "Prompt positions copied from the prefix cache",
            static_cast<double>(s.prefix_reused_tokens));

    // Every adapter loaded, idle or not: the series stays while it is loaded.
    metrics::SnapshotFamily loaded(out, "t2_worker_adapter_loaded",
                                   "1 for each adapter loaded on this worker", MetricType::Gauge);
    for (const std::string& name : cache_.loaded()) loaded.Add(1, {{"adapter", name}});

    metrics::SnapshotFamily compositions(
        out, "t2_worker_svf_compositions_total",
        "Sigma-prime weight sets composed for an adapter (merged form, cache misses)",
        MetricType::Counter);
    metrics::SnapshotFamily composition_seconds(out, "t2_worker_svf_composition_seconds_total",
                                                "Time spent composing an adapter's weights",
                                                MetricType::Counter);
    metrics::SnapshotFamily rows(
        out, "t2_worker_svf_rows_total",
        "Sequences in forward passes by adapter and form (factored: per-row z; merged: W' written)",
        MetricType::Counter);
    for (const auto& [name, usage] : s.adapters) {
      const std::string label = EngineAdapterLabel(name);
      compositions.Add(static_cast<double>(usage.compositions), {{"adapter", label}});
      composition_seconds.Add(usage.composition_seconds, {{"adapter", label}});
      rows.Add(static_cast<double>(usage.factored_rows),
               {{"adapter", label}, {"form", "factored"}});
      rows.Add(static_cast<double>(usage.merged_rows), {{"adapter", label}, {"form", "merged"}});
    }

    metrics::SnapshotFamily(
        out, "t2_worker_model_info",
        "The served model: name, SVF base fingerprint, device and dtype (value 1)",
        MetricType::Gauge)
        .Add(1, {{"model", model_.name},
                 {"fingerprint", model_.fingerprint},
                 {"device", model_.device},
                 {"dtype", model_.dtype}});
    return out;
  }

 private:
  const engine::Generator& generator_;
  const ExpertCache& cache_;
  const WorkerMetrics::ModelInfo model_;
};

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& r)
    : requests_(Counter(r, "t2_worker_requests_total",
                        "Generate calls ended, by adapter, gRPC status code and finish reason")),
      queue_seconds_(Histogram(r, "t2_worker_queue_duration_seconds",
                               "Time a request waited for a batch slot before its prefill")),
      first_token_seconds_(Histogram(r, "t2_worker_time_to_first_token_seconds",
                                     "From a Generate call's arrival to its first token")),
      inter_token_seconds_(Histogram(r, "t2_worker_inter_token_latency_seconds",
                                     "Time between a request's successive tokens")),
      request_seconds_(Histogram(r, "t2_worker_request_duration_seconds",
                                 "A Generate call from its arrival to its end")),
      prompt_tokens_(
          Counter(r, "t2_worker_prompt_tokens_total", "Prompt tokens of finished requests")),
      generation_tokens_(
          Counter(r, "t2_worker_generation_tokens_total", "Tokens generated by finished requests")),
      adapter_load_seconds_(
          Histogram(r, "t2_worker_adapter_load_seconds",
                    "Loading an adapter: registry fetch, checks and registration")),
      adapter_load_failures_(Counter(r, "t2_worker_adapter_load_failures_total",
                                     "Adapter loads that failed (the log line says which and why)")
                                 .Add({})),
      adapter_unloads_(Counter(r, "t2_worker_adapter_unloads_total",
                               "Adapters unloaded: evicted (least recently used) or deprecated")) {}

std::string WorkerMetrics::AdapterLabel(const std::string& adapter) {
  return adapter.empty() ? std::string(kBaseAdapter) : adapters_.Admit(adapter);
}

void WorkerMetrics::Call::SetAdapter(const std::string& adapter) {
  adapter_ = metrics_->AdapterLabel(adapter);
  const prometheus::Labels labels{{"adapter", adapter_}};
  const auto& buckets = metrics::LatencyBuckets();
  queue_ = &metrics_->queue_seconds_.Add(labels, buckets);
  first_token_ = &metrics_->first_token_seconds_.Add(labels, buckets);
  inter_token_ = &metrics_->inter_token_seconds_.Add(labels, buckets);
}

void WorkerMetrics::Call::Started(double queue_seconds) {
  if (queue_ != nullptr) queue_->Observe(queue_seconds);
}

void WorkerMetrics::Call::Tokens(size_t count) {
  if (count == 0 || first_token_ == nullptr) return;
  const absl::Time now = absl::Now();
  if (last_token_ == absl::InfinitePast()) {
    first_token_->Observe(absl::ToDoubleSeconds(now - arrival_));
  } else {
    const double gap = absl::ToDoubleSeconds(now - last_token_) / static_cast<double>(count);
    for (size_t i = 0; i < count; ++i) inter_token_->Observe(gap);
  }
  last_token_ = now;
}

void WorkerMetrics::Call::Finished(grpc::StatusCode code, std::string_view finish_reason,
                                   int64_t prompt_tokens, int64_t generated_tokens) {
  metrics_->requests_
      .Add({{"adapter", adapter_},
            {"code", rpc::GrpcCodeLabel(code)},
            {"finish_reason", std::string(finish_reason)}})
      .Increment();
  metrics_->request_seconds_.Add({{"adapter", adapter_}}, metrics::LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(absl::Now() - arrival_));
  if (prompt_tokens > 0)
    metrics_->prompt_tokens_.Add({{"adapter", adapter_}})
        .Increment(static_cast<double>(prompt_tokens));
  if (generated_tokens > 0) {
    metrics_->generation_tokens_.Add({{"adapter", adapter_}})
        .Increment(static_cast<double>(generated_tokens));
  }
}

ExpertCache::Events WorkerMetrics::CacheEvents() {
  ExpertCache::Events events;
  events.loaded = [this](const std::string& adapter, double seconds) {
    adapter_load_seconds_.Add({{"adapter", AdapterLabel(adapter)}}, metrics::LatencyBuckets())
        .Observe(seconds);
  };
  events.load_failed = [this](const std::string&, absl::StatusCode) {
    adapter_load_failures_.Increment();
  };
  events.unloaded = [this](const std::string& adapter, std::string_view why) {
    adapter_unloads_.Add({{"adapter", AdapterLabel(adapter)}, {"reason", std::string(why)}})
        .Increment();
  };
  return events;
}

std::shared_ptr<prometheus::Collectable> WorkerMetrics::StateCollector(
    const engine::Generator& generator, const ExpertCache& cache, ModelInfo model) {
  return std::make_shared<EngineStateCollector>(generator, cache, std::move(model));
}

}  // namespace t2::worker
