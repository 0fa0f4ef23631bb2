#include "t2/metrics/push.h"

#include <httplib.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace t2::metrics {

absl::Status PushToGateway(const std::string& gateway, const std::string& job,
                           const std::vector<std::pair<std::string, std::string>>& grouping,
                           prometheus::Registry& registry, std::chrono::seconds timeout) {
  const size_t colon = gateway.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(gateway.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("pushgateway '", gateway, "' is not HOST:PORT"));
  }
  // Label values in the path base64url-encoded, so that any value (a '/' included) is safe.
  std::string path = absl::StrCat("/metrics/job@base64/", absl::WebSafeBase64Escape(job));
  for (const auto& [name, value] : grouping) {
    absl::StrAppend(&path, "/", name, "@base64/", value.empty() ? "=" : absl::WebSafeBase64Escape(value));
  }
  httplib::Client client(gateway.substr(0, colon), port);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  const std::string body = prometheus::TextSerializer().Serialize(registry.Collect());
  auto response = client.Post(path, body, "text/plain; version=0.0.4");
  if (!response) {
    return absl::UnavailableError(
        absl::StrCat("pushgateway ", gateway, ": ", httplib::to_string(response.error())));
  }
  if (response->status < 200 || response->status >= 300) {
    return absl::UnavailableError(absl::StrCat("pushgateway ", gateway, " answered HTTP ", response->status, ": ",
                                               response->body.substr(0, 300)));
  }
  return absl::OkStatus();
}

}  // namespace t2::metrics
