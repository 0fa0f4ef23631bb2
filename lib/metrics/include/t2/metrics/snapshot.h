// Families built at scrape time from values read then: what a prometheus::Collectable that
// reports another object's state (an engine's queue, a store's size) returns from Collect().
#pragma once

#include <string>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace t2::metrics {

// Appends one family to `out` and fills it; several may be open on the same vector at once
// (each remembers its position, not an address the next one's append could move).
class SnapshotFamily {
 public:
  SnapshotFamily(std::vector<prometheus::MetricFamily>& out, std::string name, std::string help,
                 prometheus::MetricType type);

  // One series: a counter's or gauge's value with its labels.
  SnapshotFamily& Add(double value, std::vector<prometheus::ClientMetric::Label> labels = {});

 private:
  std::vector<prometheus::MetricFamily>& out_;
  size_t index_;
};

}  // namespace t2::metrics
