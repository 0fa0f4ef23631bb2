#include "t2/rpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server_metrics.h"

namespace t2::rpc {

// grpc.health.v1.Health/Check for the plaintext health listener: the main server's overall
// status for "" and for each service it names; other names NOT_FOUND, as the default service.
class HealthMirror final : public grpc::health::v1::Health::Service {
 public:
  explicit HealthMirror(std::vector<std::string> services) : services_(std::move(services)) {}
  void Set(bool serving) { serving_.store(serving); }

  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override {
    if (!request->service().empty() &&
        std::find(services_.begin(), services_.end(), request->service()) == services_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
    }
    response->set_status(serving_.load() ? grpc::health::v1::HealthCheckResponse::SERVING
                                         : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    return grpc::Status::OK;
  }

 private:
  const std::vector<std::string> services_;
  std::atomic<bool> serving_{false};
};

void RunningServer::SetServing(bool serving) const {
  auto* health = server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(serving);
  if (health_mirror != nullptr) health_mirror->Set(serving);
}

absl::StatusOr<RunningServer> StartServer(const ServerOptions& options,
                                          const std::vector<grpc::Service*>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  RunningServer running;
  builder.AddListeningPort(
      options.address,
      options.credentials != nullptr ? options.credentials : LoopbackServerCredentials(),
      &running.port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_receive_message_bytes));
  grpc::ResourceQuota quota("t2-server");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_time_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options.keepalive_timeout_ms);
  // Clients (t2's included) may ping an idle connection; more often than this is abuse.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
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
  if (!options.health_address.empty()) {
    running.health_mirror = std::make_shared<HealthMirror>(options.health_services);
    grpc::ServerBuilder health_builder;
    int health_port = 0;
    health_builder.AddListeningPort(options.health_address, grpc::InsecureServerCredentials(),
                                    &health_port);
    health_builder.RegisterService(running.health_mirror.get());
    // Probes send a few bytes; nothing bigger is needed.
    health_builder.SetMaxReceiveMessageSize(4096);
    running.health_server = health_builder.BuildAndStart();
    if (running.health_server == nullptr || health_port == 0) {
      running.server->Shutdown(std::chrono::system_clock::now());
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options.health_address, " (--health-listen)"));
    }
    std::string health_host = options.health_address.substr(0, options.health_address.rfind(':'));
    running.health_address = absl::StrCat(health_host, ":", health_port);
  }
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

}  // namespace t2::rpc
