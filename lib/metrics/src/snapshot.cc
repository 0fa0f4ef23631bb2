#include "t2/metrics/snapshot.h"

#include <utility>

namespace t2::metrics {

SnapshotFamily::SnapshotFamily(std::vector<prometheus::MetricFamily>& out, std::string name,
                               std::string help, prometheus::MetricType type)
    : out_(out), index_(out.size()) {
  prometheus::MetricFamily& family = out.emplace_back();
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
}

SnapshotFamily& SnapshotFamily::Add(double value,
                                    std::vector<prometheus::ClientMetric::Label> labels) {
  prometheus::MetricFamily& family = out_[index_];
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (family.type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return *this;
}

}  // namespace t2::metrics
