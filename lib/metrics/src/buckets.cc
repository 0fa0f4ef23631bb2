#include "t2/metrics/buckets.h"

namespace t2::metrics {

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> buckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                              2.5,   5,      10,    20,   40,    60,   120, 300,  600};
  return buckets;
}

const std::vector<double>& CountBuckets() {
  static const std::vector<double> buckets = [] {
    std::vector<double> b;
    for (double v = 1; v <= 32768; v *= 2) b.push_back(v);
    return b;
  }();
  return buckets;
}

}  // namespace t2::metrics
