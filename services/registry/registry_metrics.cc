#include "registry_metrics.h"

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "t2/common/log.h"
#include "t2/metrics/snapshot.h"

namespace t2::registry {
namespace {

class StoreCollector final : public prometheus::Collectable {
 public:
  StoreCollector(const store::ExpertStore& store, const std::atomic<int64_t>& watchers)
      : store_(store), watchers_(watchers) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto gauge = [&](const char* name, const char* help, double value) {
      metrics::SnapshotFamily(out, name, help, prometheus::MetricType::Gauge).Add(value);
    };
    gauge("t2_registry_watch_subscribers",
          "Open Watch streams (workers and dispatchers following changes)",
          static_cast<double>(watchers_.load()));
    // A store that cannot be read leaves its gauges out of this scrape rather than report 0.
    auto experts = store_.ListExperts("", /*include_deprecated=*/true);
    auto aliases = store_.ListAliases();
    auto mixtures = store_.ListMixtures();
    if (!experts.ok() || !aliases.ok() || !mixtures.ok()) {
      LogWarning("metrics: the store could not be listed; its gauges are left out of this scrape");
      return out;
    }
    std::set<std::string> names;
    std::map<std::string, int64_t> blobs;  // content addressed: versions with equal bytes share one
    int64_t live_versions = 0;
    for (const store::ExpertInfo& e : *experts) {
      names.insert(e.name);
      blobs[e.sha256] = e.size_bytes;
      live_versions += e.deprecated ? 0 : 1;
    }
    int64_t blob_bytes = 0;
    for (const auto& [sha, bytes] : blobs) blob_bytes += bytes;
    gauge("t2_registry_experts", "Expert names", static_cast<double>(names.size()));
    gauge("t2_registry_expert_versions", "Expert versions not deprecated",
          static_cast<double>(live_versions));
    gauge("t2_registry_aliases", "Aliases", static_cast<double>(aliases->size()));
    gauge("t2_registry_mixtures", "Stored mixtures", static_cast<double>(mixtures->size()));
    gauge("t2_registry_blob_bytes", "Bytes of the stored expert blobs (each distinct blob once)",
          static_cast<double>(blob_bytes));
    return out;
  }

 private:
  const store::ExpertStore& store_;
  const std::atomic<int64_t>& watchers_;
};

}  // namespace

std::string_view PublishRefusalReason(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "none";
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::DATA_LOSS:
      return "invalid";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "exists";
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::NOT_FOUND:
      return "unknown_base";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "too_large";
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "cancelled";
    default:
      return "internal";
  }
}

RegistryMetrics::RegistryMetrics(prometheus::Registry& r)
    : publishes_(prometheus::BuildCounter()
                     .Name("t2_registry_publishes_total")
                     .Help("PublishExpert calls: accepted, or refused with the class of the reason")
                     .Register(r)) {
  publishes_.Add({{"result", "accepted"}, {"reason", "none"}});  // a series from the start
}

void RegistryMetrics::RecordPublish(grpc::StatusCode code) {
  const bool accepted = code == grpc::StatusCode::OK;
  publishes_
      .Add({{"result", accepted ? "accepted" : "refused"},
            {"reason", std::string(PublishRefusalReason(code))}})
      .Increment();
}

std::shared_ptr<prometheus::Collectable> RegistryMetrics::StateCollector(
    const store::ExpertStore& store) const {
  return std::make_shared<StoreCollector>(store, watchers_);
}

}  // namespace t2::registry
