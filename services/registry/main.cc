// t2-registry: the expert registry service. Thin: flags, the store, the gRPC server.
#include <chrono>
#include <climits>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "registry_service.h"
#include "t2/common/atomic_file.h"
#include "t2/common/command_line.h"
#include "t2/common/log.h"
#include "t2/metrics/service_metrics.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "t2/store/expert_store.h"

namespace {

constexpr int64_t kMinMessageBytes = (int64_t{1} << 20) + 1024;
// How long in-flight calls get to finish after a shutdown signal before they are cancelled.
constexpr auto kShutdownGrace = std::chrono::seconds(5);

struct Config {
  std::string root;
  std::string listen = "127.0.0.1:50051";
  std::string port_file;
  int64_t max_message_bytes = 4 << 20;
  int64_t transfer_idle_seconds = 30;
  int64_t min_free_disk_mb = 512;
  int64_t max_events = 100'000;
  t2::rpc::Security security;
  t2::metrics::MetricsFlags metrics;
};

void AddFlags(t2::CommandLine& command_line, Config& c) {
  command_line
      .add_option("--root", c.root,
                  "the store's folder (created if missing); one process per folder")
      ->type_name("DIR")
      ->required();
  command_line.add_option("--listen", c.listen, "address to listen on (port 0: any free port)")
      ->type_name("HOST:PORT");
  command_line
      .add_option("--port-file", c.port_file,
                  "once serving, write the bound HOST:PORT here (atomically)")
      ->type_name("FILE");
  command_line
      .add_option("--max-message-bytes", c.max_message_bytes,
                  "largest request message accepted (publish chunks are at most 1 MiB)")
      ->type_name("N")
      ->transform(t2::IntIn(kMinMessageBytes, INT_MAX));
  command_line
      .add_option("--transfer-idle-seconds", c.transfer_idle_seconds,
                  "cancel an upload or download that moves no bytes for this long")
      ->type_name("S")
      ->transform(t2::IntIn(1, 3600));
  command_line
      .add_option(
          "--min-free-disk-mb", c.min_free_disk_mb,
          "refuse a publish (RESOURCE_EXHAUSTED) that would leave less than this many MiB free on "
          "the store's disk, counting uploads in progress")
      ->type_name("MB")
      ->transform(t2::IntIn(0, int64_t{1} << 20));
  command_line
      .add_option("--max-events", c.max_events,
                  "change-log events kept for Watch clients that resume; one further behind gets "
                  "OUT_OF_RANGE and resyncs")
      ->type_name("N")
      ->transform(t2::IntIn(1, int64_t{1} << 40));
  t2::rpc::AddSecurityFlags(command_line, c.security, /*server=*/true);
  t2::metrics::AddMetricsFlags(command_line, c.metrics);
}

int Usage(const std::string& problem) {
  std::cerr << "t2-registry: " << problem << "\n";
  return 2;
}

// Serves until SIGTERM/SIGINT, then lets in-flight calls finish for kShutdownGrace.
int Serve(const Config& config, const std::shared_ptr<grpc::ServerCredentials>& credentials) {
  auto store = t2::store::ExpertStore::Open({.root = config.root, .max_events = config.max_events});
  if (!store.ok()) {
    t2::LogError(absl::StrCat("t2-registry: ", store.status().message()));
    return 1;
  }
  auto metrics = t2::metrics::StartServiceMetrics(config.metrics);
  if (!metrics.ok()) {
    t2::LogError(absl::StrCat("t2-registry: ", metrics.status().message()));
    return 1;
  }
  t2::registry::RegistryMetrics registry_metrics(*metrics->registry);
  auto state = registry_metrics.StateCollector(**store);
  metrics->Add(state);
  t2::registry::RegistryService service(
      store->get(), &registry_metrics,
      {.transfer_idle_timeout = absl::Seconds(config.transfer_idle_seconds),
       .min_free_disk_bytes = config.min_free_disk_mb << 20});
  auto server = t2::rpc::StartServer({.address = config.listen,
                                      .max_receive_message_bytes = config.max_message_bytes,
                                      .health_services = {t2::v1::Registry::service_full_name()},
                                      .metrics = metrics->registry.get(),
                                      .credentials = credentials,
                                      .health_address = config.security.health_listen},
                                     {&service});
  if (!server.ok()) {
    t2::LogError(absl::StrCat("t2-registry: ", server.status().message()));
    return 1;
  }
  server->SetServing(true);
  if (!config.port_file.empty()) {
    absl::Status written = t2::WriteFileAtomically(config.port_file, server->address);
    if (!written.ok()) {
      t2::LogError(absl::StrCat("t2-registry: --port-file: ", written.message()));
      server->server->Shutdown(std::chrono::system_clock::now());
      return 1;
    }
  }
  t2::LogInfo(absl::StrCat("t2-registry: serving on ", server->address, ", store ",
                           (*store)->root().string()));

  const int signal = t2::rpc::WaitForShutdownSignal();
  t2::LogInfo(absl::StrCat("t2-registry: signal ", signal, ", shutting down"));
  server->SetServing(false);
  service.BeginShutdown();
  server->server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server->server->Wait();
  metrics->endpoint.reset();  // no scrape may read the store while it is destroyed
  t2::LogInfo("t2-registry: stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the mask and the signal is taken
  // only by WaitForShutdownSignal.
  t2::rpc::BlockShutdownSignals();
  t2::CommandLine command_line(
      "t2-registry",
      "Serves t2.v1.Registry (plus grpc.health.v1 and reflection) over the expert store "
      "in --root.");
  Config config;
  AddFlags(command_line, config);
  if (auto exit_code = command_line.Parse(argc, argv)) return *exit_code;
  if (!config.security.token_file.empty()) {
    return Usage("--token-file: the registry calls no other service, so it has no token to send");
  }
  if (absl::Status checked = t2::rpc::CheckSecurity(config.security, /*server=*/true);
      !checked.ok()) {
    return Usage(std::string(checked.message()));
  }
  auto credentials = t2::rpc::MakeServerCredentials(config.security, config.listen);
  if (!credentials.ok()) return Usage(std::string(credentials.status().message()));
  return Serve(config, *credentials);
}
