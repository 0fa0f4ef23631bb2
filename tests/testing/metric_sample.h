// Reading one value out of what a scrape would serve (prometheus::MetricFamily, as
// Registry::Collect and Collectable::Collect return it), for tests of metrics.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "prometheus/metric_family.h"

namespace t2::testing {

// The first series of family `name` whose labels include all of `labels`: a counter's or
// gauge's value, a histogram's sample count (or its sum with `sum`); NaN when there is none.
inline double MetricSample(const std::vector<prometheus::MetricFamily>& families,
                           const std::string& name,
                           const std::map<std::string, std::string>& labels = {},
                           bool sum = false) {
  for (const auto& family : families) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      size_t matched = 0;
      for (const auto& label : metric.label) {
        auto it = labels.find(label.name);
        matched += it != labels.end() && it->second == label.value ? 1 : 0;
      }
      if (matched != labels.size()) continue;
      switch (family.type) {
        case prometheus::MetricType::Counter:
          return metric.counter.value;
        case prometheus::MetricType::Gauge:
          return metric.gauge.value;
        case prometheus::MetricType::Histogram:
          return sum ? metric.histogram.sample_sum
                     : static_cast<double>(metric.histogram.sample_count);
        default:
          return std::nan("");
      }
    }
  }
  return std::nan("");
}

}  // namespace t2::testing
