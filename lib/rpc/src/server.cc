#include "t2/rpc/server.h"

#include <signal.h>

#include <fstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "t2/rpc/server_metrics.h"

namespace t2::rpc {

void RunningServer::SetServing(bool serving) const {
  auto* health = server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(serving);
}

absl::StatusOr<RunningServer> StartServer(const ServerOptions& options,
                                          const std::vector<grpc::Service*>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  RunningServer running;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &running.port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_receive_message_bytes));
  for (grpc::Service* service : services) builder.RegisterService(service);
  if (options.metrics != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(MakeServerMetricsInterceptor(*options.metrics, options.health_services));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  running.server = builder.BuildAndStart();
  if (running.server == nullptr || running.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address));
  }
  if (auto* health = running.server->GetHealthCheckService(); health != nullptr) {
    for (const std::string& name : options.health_services) health->SetServingStatus(name, false);
  }
  running.SetServing(false);
  std::string host = options.address.substr(0, options.address.rfind(':'));
  running.address = absl::StrCat(host, ":", running.port);
  return running;
}

namespace {
sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

void BlockShutdownSignals() {
  sigset_t set = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForShutdownSignal() {
  sigset_t set = ShutdownSignals();
  int signal = 0;
  while (sigwait(&set, &signal) != 0) {
  }
  return signal;
}

absl::Status WriteFileAtomically(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path temp = path;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << text;
    if (!out.flush()) return absl::InternalError(absl::StrCat("writing ", temp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("renaming to ", path.string(), ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace t2::rpc
