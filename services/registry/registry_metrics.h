// The registry's Prometheus families (README.md, "Metrics"): publishes by result and the
// class of the refusal, Watch subscribers, and, read from the store at each scrape, how many
// experts, versions, aliases and mixtures it holds and the bytes of their blobs.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string_view>

#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "t2/store/expert_store.h"

namespace t2::registry {

// Why a publish was refused, by its status code: the client's bytes or header ("invalid"),
// the version taken ("exists"), no registered base model fits ("unknown_base"), over a size
// or disk limit ("too_large"), the client gave up ("cancelled"), else the server ("internal").
std::string_view PublishRefusalReason(grpc::StatusCode code);

class RegistryMetrics {
 public:
  explicit RegistryMetrics(prometheus::Registry& registry);

  void RecordPublish(grpc::StatusCode code);
  // A Watch stream begins / ends.
  void WatchOpened() { ++watchers_; }
  void WatchClosed() { --watchers_; }

  // The store's contents and the open Watch streams at each scrape; `store` and this object
  // must outlive the collector.
  std::shared_ptr<prometheus::Collectable> StateCollector(const store::ExpertStore& store) const;

 private:
  prometheus::Family<prometheus::Counter>& publishes_;
  std::atomic<int64_t> watchers_{0};
};

}  // namespace t2::registry
