#include "t2/metrics/service_metrics.h"

#include "absl/strings/str_cat.h"
#include "t2/common/atomic_file.h"
#include "t2/common/log.h"

namespace t2::metrics {

void AddMetricsFlags(CLI::App& app, MetricsFlags& flags) {
  CLI::App* group = app.add_option_group("Metrics", "Prometheus metrics");
  group
      ->add_option("--metrics-listen", flags.listen,
                   "serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any free port; "
                   "[HOST]:PORT for IPv6); without it nothing is served")
      ->type_name("HOST:PORT");
  group
      ->add_option("--metrics-port-file", flags.port_file,
                   "write the metrics endpoint's bound HOST:PORT here (atomically)")
      ->type_name("FILE");
}

absl::StatusOr<ServiceMetrics> StartServiceMetrics(const MetricsFlags& flags) {
  const std::string& listen = flags.listen;
  const std::string& port_file = flags.port_file;
  ServiceMetrics metrics;
  if (listen.empty()) {
    if (!port_file.empty()) return absl::InvalidArgumentError("--metrics-port-file needs --metrics-listen");
    return metrics;
  }
  auto endpoint = Endpoint::Start(listen, metrics.registry);
  if (!endpoint.ok()) {
    return absl::Status(endpoint.status().code(), absl::StrCat("--metrics-listen: ", endpoint.status().message()));
  }
  metrics.endpoint = std::move(*endpoint);
  metrics.Add(metrics.process);
  if (!port_file.empty()) {
    absl::Status written = WriteFileAtomically(port_file, metrics.endpoint->address() + "\n");
    if (!written.ok()) {
      return absl::Status(written.code(), absl::StrCat("--metrics-port-file: ", written.message()));
    }
  }
  LogInfo(absl::StrCat("metrics at ", metrics.endpoint->url()));
  return metrics;
}

}  // namespace t2::metrics
