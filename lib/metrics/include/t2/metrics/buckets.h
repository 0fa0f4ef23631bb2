// Histogram buckets shared by every service, so that dashboards compare like with like.
#pragma once

#include <vector>

namespace t2::metrics {

// Seconds, 1 ms to 10 minutes: a token takes milliseconds on a GPU, a long CPU generation or a
// CEM Adapt run takes minutes, and a p99 must never sit in the +Inf bucket.
const std::vector<double>& LatencyBuckets();

// Counts (batch sizes, tokens per request): powers of two up to 32768.
const std::vector<double>& CountBuckets();

}  // namespace t2::metrics
