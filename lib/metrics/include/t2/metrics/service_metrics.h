// What every service's main does for metrics: one registry the service's parts record into,
// served at --metrics-listen (if given) and its bound address written to --metrics-port-file.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"
#include "t2/metrics/endpoint.h"
#include "t2/metrics/process_collector.h"

namespace t2::metrics {

inline constexpr const char* kMetricsFlagsUsage =
    "  --metrics-listen HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any\n"
    "                              free port; [HOST]:PORT for IPv6); without it nothing is served\n"
    "  --metrics-port-file FILE    write the metrics endpoint's bound HOST:PORT here (atomically)\n";

struct ServiceMetrics {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<Endpoint> endpoint;  // null when `listen` was empty
  // The process's memory and fds, served beside the registry by every service.
  std::shared_ptr<ProcessCollector> process = std::make_shared<ProcessCollector>();

  // Serves `collectable` beside `registry` (see Endpoint::Add); nothing without an endpoint.
  void Add(std::weak_ptr<prometheus::Collectable> collectable) {
    if (endpoint != nullptr) endpoint->Add(std::move(collectable));
  }
};

// `listen` empty: a registry that is recorded into but not served (a port file then is an
// INVALID_ARGUMENT: it would never be written).
absl::StatusOr<ServiceMetrics> StartServiceMetrics(const std::string& listen, const std::string& port_file);

}  // namespace t2::metrics
