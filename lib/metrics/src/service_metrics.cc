#include "t2/metrics/service_metrics.h"

#include "absl/strings/str_cat.h"
#include "t2/common/atomic_file.h"
#include "t2/common/log.h"

namespace t2::metrics {

absl::StatusOr<ServiceMetrics> StartServiceMetrics(const std::string& listen, const std::string& port_file) {
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
