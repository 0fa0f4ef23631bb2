// t2-registry: the expert registry service. Thin: flags, the store, the gRPC server.
#include <chrono>
#include <climits>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "registry_service.h"
#include "t2/common/atomic_file.h"
#include "t2/common/flags.h"
#include "t2/common/log.h"
#include "t2/metrics/service_metrics.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "t2/store/expert_store.h"

namespace {

constexpr const char* kUsage = R"(usage: t2-registry --root DIR [options]
  Serves t2.v1.Registry (plus grpc.health.v1 and reflection) over the expert store in DIR.
  --root DIR               the store's folder (created if missing); one process per folder
  --listen HOST:PORT       address to listen on (default: 127.0.0.1:50051; port 0: any)
  --port-file FILE         once serving, write the bound HOST:PORT to FILE (atomically)
  --max-message-bytes N    largest request message accepted (default: 4194304; publish
                           chunks are at most 1 MiB, so at least 1049600)
  --transfer-idle-seconds N  cancel an upload or download that moves no bytes for N seconds
                           (default 30; 1..3600)
  --min-free-disk-mb N     refuse a publish (RESOURCE_EXHAUSTED) that would leave less than N
                           MiB free on the store's disk, counting uploads in progress
                           (default 512; 0..1048576)
  --max-events N           change-log events kept for Watch clients that resume (default
                           100000); one further behind gets OUT_OF_RANGE and resyncs
)";

constexpr int64_t kMinMessageBytes = (int64_t{1} << 20) + 1024;
// How long in-flight calls get to finish after a shutdown signal before they are cancelled.
constexpr auto kShutdownGrace = std::chrono::seconds(5);

int Usage(const std::string& problem) {
  std::cerr << "t2-registry: " << problem << "\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the mask and the signal is taken
  // only by WaitForShutdownSignal.
  t2::rpc::BlockShutdownSignals();

  t2::FlagSpec spec{
      .value_flags = {"root", "listen", "port-file", "max-message-bytes", "transfer-idle-seconds",
                      "min-free-disk-mb", "max-events", "metrics-listen", "metrics-port-file"},
      .bool_flags = {"help"}};
  t2::rpc::AddServerSecurityFlags(spec);
  auto flags = t2::Flags::Parse(std::vector<std::string>(argv + 1, argv + argc), spec);
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  if (flags->Has("help")) {
    std::cout << kUsage << t2::rpc::kServerSecurityUsage << t2::metrics::kMetricsFlagsUsage;
    return 0;
  }
  if (!flags->positional().empty()) return Usage("unexpected argument " + flags->positional()[0]);
  if (!flags->Has("root")) return Usage("--root is required");
  if (flags->Has("token-file")) {
    return Usage("--token-file: the registry calls no other service, so it has no token to send");
  }
  auto max_message = flags->GetInt("max-message-bytes", 4 << 20);
  if (!max_message.ok()) return Usage(std::string(max_message.status().message()));
  if (*max_message < kMinMessageBytes || *max_message > INT_MAX) {
    return Usage(absl::StrCat("--max-message-bytes: ", *max_message, " is not in [",
                              kMinMessageBytes, ", ", INT_MAX, "]"));
  }

  auto idle_seconds = flags->GetInt("transfer-idle-seconds", 30, 1, 3600);
  if (!idle_seconds.ok()) return Usage(std::string(idle_seconds.status().message()));
  auto min_free_mb = flags->GetInt("min-free-disk-mb", 512, 0, int64_t{1} << 20);
  if (!min_free_mb.ok()) return Usage(std::string(min_free_mb.status().message()));
  auto max_events = flags->GetInt("max-events", 100'000, 1, int64_t{1} << 40);
  if (!max_events.ok()) return Usage(std::string(max_events.status().message()));

  auto security = t2::rpc::SecurityFromFlags(*flags, /*server=*/true);
  if (!security.ok()) return Usage(std::string(security.status().message()));
  const std::string listen = flags->Get("listen", "127.0.0.1:50051");
  auto credentials = t2::rpc::MakeServerCredentials(*security, listen);
  if (!credentials.ok()) return Usage(std::string(credentials.status().message()));

  auto store =
      t2::store::ExpertStore::Open({.root = flags->Get("root", ""), .max_events = *max_events});
  if (!store.ok()) {
    t2::LogError(absl::StrCat("t2-registry: ", store.status().message()));
    return 1;
  }
  auto metrics = t2::metrics::StartServiceMetrics(flags->Get("metrics-listen", ""), flags->Get("metrics-port-file", ""));
  if (!metrics.ok()) {
    t2::LogError(absl::StrCat("t2-registry: ", metrics.status().message()));
    return 1;
  }
  t2::registry::RegistryMetrics registry_metrics(*metrics->registry);
  auto state = registry_metrics.StateCollector(**store);
  metrics->Add(state);
  t2::registry::RegistryService service(store->get(), &registry_metrics,
                                        {.transfer_idle_timeout = absl::Seconds(*idle_seconds),
                                         .min_free_disk_bytes = *min_free_mb << 20});
  auto server = t2::rpc::StartServer({.address = listen,
                                      .max_receive_message_bytes = *max_message,
                                      .health_services = {t2::v1::Registry::service_full_name()},
                                      .metrics = metrics->registry.get(),
                                      .credentials = *credentials,
                                      .health_address = flags->Get("health-listen", "")},
                                     {&service});
  if (!server.ok()) {
    t2::LogError(absl::StrCat("t2-registry: ", server.status().message()));
    return 1;
  }
  server->SetServing(true);
  if (flags->Has("port-file")) {
    absl::Status written = t2::WriteFileAtomically(flags->Get("port-file", ""), server->address);
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
