// t2-dispatcher: flags and wiring; the work is in the service library beside this file.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dispatcher_service.h"
#include "dns_target.h"
#include "expert_resolver.h"
#include "t2/common/atomic_file.h"
#include "t2/common/command_line.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/metrics/service_metrics.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "worker_pool.h"

namespace {

struct Config {
  std::string listen = "127.0.0.1:50050";
  t2::rpc::Security security;
  std::string registry;
  std::vector<std::string> workers;  // as given
  std::vector<std::string> worker_addresses;
  std::vector<t2::dispatcher::DnsTarget> worker_names;
  std::string port_file;
  t2::metrics::MetricsFlags metrics;
  int first_pass_max_tokens = 32;
  int handler_threads = 64;
  bool cem_sequential = false;
  int shutdown_grace_seconds = 10;
};

void AddFlags(t2::CommandLine& command_line, Config& c) {
  command_line.add_option("--listen", c.listen, "address to serve on (port 0: any free port)")
      ->type_name("HOST:PORT");
  command_line.add_option("--registry", c.registry, "the t2-registry to resolve experts through")
      ->type_name("HOST:PORT")
      ->required();
  command_line
      .add_option(
          "--worker", c.workers,
          "a t2-worker; repeat for several. dns:///NAME:PORT: every address NAME resolves to "
          "(A records) is a worker at PORT, looked up again every 5 s (a Kubernetes headless "
          "Service); dns://HOST:PORT/NAME:PORT asks that DNS server")
      ->type_name("HOST:PORT")
      ->required();
  command_line
      .add_option("--port-file", c.port_file,
                  "write the bound HOST:PORT here (atomically) once serving")
      ->type_name("FILE");
  command_line
      .add_option("--first-pass-max-tokens", c.first_pass_max_tokens,
                  "answer budget of GENERATE-mode classification")
      ->type_name("N")
      ->transform(t2::IntIn(1, 4096));
  command_line
      .add_option("--handler-threads", c.handler_threads,
                  "threads for the blocking parts of calls (first passes, CEM searches); a "
                  "generation holds none once its first pass is done")
      ->type_name("N")
      ->transform(t2::IntIn(1, 4096));
  command_line.add_flag("--cem-sequential", c.cem_sequential,
                        "Adapt evaluates one CEM candidate at a time (for benchmarks)");
  command_line
      .add_option("--shutdown-grace-seconds", c.shutdown_grace_seconds,
                  "on SIGTERM, how long in-flight calls may finish")
      ->type_name("S")
      ->transform(t2::IntIn(0, 3600));
  t2::rpc::AddSecurityFlags(command_line, c.security, /*server=*/true);
  t2::metrics::AddMetricsFlags(command_line, c.metrics);
}

// What the flags alone cannot check: the security flags' combination and files, and each
// --worker's form (an address, or a DNS name to watch).
absl::Status CheckConfig(Config& c) {
  T2_RETURN_IF_ERROR(t2::rpc::CheckSecurity(c.security, /*server=*/true));
  for (const std::string& w : c.workers) {
    if (w.empty()) return absl::InvalidArgumentError("--worker must not be empty");
    if (t2::dispatcher::IsDnsTarget(w)) {
      T2_ASSIGN_OR_RETURN(t2::dispatcher::DnsTarget target, t2::dispatcher::ParseDnsTarget(w));
      c.worker_names.push_back(std::move(target));
    } else {
      c.worker_addresses.push_back(w);
    }
  }
  return absl::OkStatus();
}

// Declares SERVING once the registry answers (before that every expert lookup would fail),
// then starts the resolver's watch and writes the port file. Returns early when `stopping`.
void ServeOnceTheRegistryAnswers(const Config& config, t2::dispatcher::ExpertResolver& resolver,
                                 const t2::dispatcher::WorkerPool& pool,
                                 t2::rpc::RunningServer& server,
                                 const std::atomic<bool>& stopping) {
  bool logged = false;
  while (!stopping.load()) {
    absl::Status ping = resolver.Ping(std::chrono::seconds(1));
    if (ping.ok()) break;
    if (!logged) {
      t2::LogWarning(absl::StrCat("registry not reachable yet (", ping.message(), "); retrying"));
      logged = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (stopping.load()) return;
  resolver.StartWatch();
  server.SetServing(true);
  if (!config.port_file.empty()) {
    absl::Status written = t2::WriteFileAtomically(config.port_file, server.address);
    if (!written.ok()) t2::LogError(absl::StrCat("--port-file: ", written.message()));
  }
  t2::LogInfo(absl::StrCat("t2-dispatcher serving on ", server.address, " with ", pool.size(),
                           " worker(s) from ", absl::StrJoin(config.workers, ", ")));
}

// Serves until SIGTERM/SIGINT, then lets in-flight calls finish within the grace period. The
// exit code.
int Serve(const Config& config, const std::shared_ptr<grpc::ServerCredentials>& server_credentials,
          const std::shared_ptr<grpc::ChannelCredentials>& channel_credentials) {
  auto metrics = t2::metrics::StartServiceMetrics(config.metrics);
  if (!metrics.ok()) {
    t2::LogError(absl::StrCat("t2-dispatcher: ", metrics.status().message()));
    return 1;
  }
  using namespace t2::dispatcher;
  grpc::ChannelArguments registry_args;
  registry_args.SetMaxReceiveMessageSize(t2::rpc::kMaxClientReceiveMessageBytes);
  ExpertResolver resolver(
      grpc::CreateCustomChannel(config.registry, channel_credentials, registry_args), {});
  WorkerPool pool({.addresses = config.worker_addresses,
                   .dns_targets = config.worker_names,
                   .credentials = channel_credentials});
  DispatcherMetrics dispatcher_metrics(*metrics->registry);
  auto state = DispatcherMetrics::StateCollector(pool, resolver);
  metrics->Add(state);
  DispatcherService service(pool, resolver,
                            {.first_pass = {.generate_max_tokens = config.first_pass_max_tokens},
                             .adapt = {.max_concurrent_candidates = config.cem_sequential ? 1 : 0},
                             .metrics = &dispatcher_metrics,
                             .handlers = {.max_threads = config.handler_threads}});

  absl::StatusOr<t2::rpc::RunningServer> server =
      t2::rpc::StartServer({.address = config.listen,
                            .health_services = {t2::v1::Dispatcher::service_full_name()},
                            .metrics = metrics->registry.get(),
                            .credentials = server_credentials,
                            .health_address = config.security.health_listen},
                           {&service});
  if (!server.ok()) {
    t2::LogError(absl::StrCat("t2-dispatcher: ", server.status().message()));
    return 1;
  }
  t2::LogInfo(absl::StrCat("t2-dispatcher listening on ", server->address,
                           "; waiting for the registry at ", config.registry));
  std::atomic<bool> stopping{false};
  std::thread ready(
      [&] { ServeOnceTheRegistryAnswers(config, resolver, pool, *server, stopping); });

  int signal = t2::rpc::WaitForShutdownSignal();
  t2::LogInfo(absl::StrCat("t2-dispatcher: signal ", signal, ", draining for up to ",
                           config.shutdown_grace_seconds, " s"));
  stopping = true;
  ready.join();
  server->SetServing(false);
  // In-flight calls may finish within the grace period; after it gRPC cancels them, which the
  // handlers see and pass on to their worker calls.
  server->server->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(config.shutdown_grace_seconds));
  server->server->Wait();
  metrics->endpoint.reset();  // no scrape may read the pool or resolver while they are destroyed
  t2::LogInfo("t2-dispatcher stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  t2::rpc::BlockShutdownSignals();
  t2::CommandLine command_line(
      "t2-dispatcher", "Serves t2.v1.Dispatcher: the first pass, then generation on a worker.");
  Config config;
  AddFlags(command_line, config);
  if (auto exit_code = command_line.Parse(argc, argv)) return *exit_code;
  if (absl::Status checked = CheckConfig(config); !checked.ok()) {
    std::fprintf(stderr, "t2-dispatcher: %s\n", std::string(checked.message()).c_str());
    return 2;
  }
  // The dispatcher serves with these and calls the registry and workers with its certificate
  // (or token).
  auto server_credentials = t2::rpc::MakeServerCredentials(config.security, config.listen);
  auto channel_credentials = t2::rpc::MakeChannelCredentials(config.security);
  for (const absl::Status& s : {server_credentials.status(), channel_credentials.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "t2-dispatcher: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  return Serve(config, *server_credentials, *channel_credentials);
}
