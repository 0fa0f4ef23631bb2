// Pushing a batch job's metrics to a Prometheus Pushgateway, the standard for jobs that end
// before Prometheus could scrape them (the trainer CronJob).
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "prometheus/registry.h"

namespace t2::metrics {

// Sends `registry`'s families to the Pushgateway at HOST:PORT under the grouping key job=`job`
// plus `grouping`, with POST: the pushed families replace the same families of that group and
// leave the group's others (e.g. a failed run pushes no success time, so the last one stays).
// Each request step is bounded by `timeout`. UNAVAILABLE when the gateway cannot be reached or
// refuses, naming the gateway and its answer.
absl::Status PushToGateway(const std::string& gateway, const std::string& job,
                           const std::vector<std::pair<std::string, std::string>>& grouping,
                           prometheus::Registry& registry, std::chrono::seconds timeout = std::chrono::seconds(10));

}  // namespace t2::metrics
