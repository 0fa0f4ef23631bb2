// What every service's main does for metrics: one registry the service's parts record into,
// served at --metrics-listen (if given) and its bound address written to --metrics-port-file.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"
#include "t2/common/command_line.h"
#include "t2/metrics/endpoint.h"
#include "t2/metrics/process_collector.h"

namespace t2::metrics {

// Where a service serves its metrics: --metrics-listen and --metrics-port-file.
struct MetricsFlags {
  std::string listen;     // empty: nothing is served
  std::string port_file;  // the endpoint's bound HOST:PORT is written here (atomically)
};

// Declares the two flags, in their own section of --help.
void AddMetricsFlags(CLI::App& app, MetricsFlags& flags);

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

// `flags.listen` empty: a registry that is recorded into but not served (a port file then is
// an INVALID_ARGUMENT: it would never be written).
absl::StatusOr<ServiceMetrics> StartServiceMetrics(const MetricsFlags& flags);

}  // namespace t2::metrics
