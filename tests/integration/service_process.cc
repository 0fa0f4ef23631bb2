#include "service_process.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "t2/rpc/security.h"

namespace t2::testing {

using grpc::health::v1::HealthCheckResponse;

absl::StatusOr<std::unique_ptr<ServiceProcess>> StartService(
    const std::string& binary, const std::vector<std::string>& args,
    const std::filesystem::path& dir, const std::string& name, bool wait_serving,
    std::chrono::seconds timeout, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto service = std::make_unique<ServiceProcess>();
  const auto port_file = dir / (name + ".port");
  std::filesystem::remove(port_file);
  service->log = dir / (name + ".log");
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), args.begin(), args.end());
  // An ephemeral port unless the test names one (to restart a service where its peers expect it).
  if (std::find(args.begin(), args.end(), "--listen") == args.end()) {
    argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
  }
  argv.insert(argv.end(), {"--port-file", port_file.string()});
  // Plaintext on loopback unless the test secures the service itself.
  if (std::find(args.begin(), args.end(), "--tls-cert") == args.end())
    argv.push_back("--insecure-loopback");
  if (!service->process.Start(argv, service->log)) return absl::InternalError(absl::StrCat("cannot start ", binary));
  service->address = WaitForFile(port_file, service->process, timeout);
  if (service->address.empty()) {
    return absl::UnavailableError(absl::StrCat(name, " did not start; log:\n", service->LogTail()));
  }
  service->channel = grpc::CreateChannel(
      service->address,
      credentials != nullptr ? credentials : t2::rpc::LoopbackChannelCredentials());
  if (wait_serving && !WaitForHealth(service->channel, HealthCheckResponse::SERVING, timeout)) {
    return absl::UnavailableError(absl::StrCat(name, " never became SERVING; log:\n", service->LogTail()));
  }
  return service;
}

HealthCheckResponse::ServingStatus HealthOf(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckRequest request;
  HealthCheckResponse response;
  if (!stub->Check(&context, request, &response).ok()) return HealthCheckResponse::UNKNOWN;
  return response.status();
}

bool WaitForHealth(const std::shared_ptr<grpc::Channel>& channel, HealthCheckResponse::ServingStatus status,
                   std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (HealthOf(channel) == status) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string BinaryFromEnv(const char* variable) {
  const char* value = std::getenv(variable);
  return value == nullptr ? "" : value;
}

}  // namespace t2::testing
