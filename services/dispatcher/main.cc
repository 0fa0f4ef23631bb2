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
#include "t2/common/flags.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/metrics/service_metrics.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "worker_pool.h"

namespace {

constexpr char kUsage[] =
    R"(usage: t2-dispatcher --registry HOST:PORT --worker HOST:PORT [--worker ...] [options]

  --listen HOST:PORT          address to serve on (default 127.0.0.1:50050; port 0: any free port)
  --registry HOST:PORT        the t2-registry to resolve experts through (required)
  --worker HOST:PORT          a t2-worker; repeat for several (at least one)
  --worker dns:///NAME:PORT   every address NAME resolves to (A records) is a worker at PORT,
                              looked up again every 5 s (a Kubernetes headless Service);
                              dns://HOST:PORT/NAME:PORT asks that DNS server
  --port-file FILE            write the bound host:port here (atomically) once serving
  --first-pass-max-tokens N   answer budget of GENERATE-mode classification (default 32)
  --cem-sequential            Adapt evaluates one CEM candidate at a time (for benchmarks)
  --shutdown-grace-seconds S  on SIGTERM, how long in-flight calls may finish (default 10)
)";

struct Config {
  std::string listen;
  t2::rpc::Security security;
  std::string health_listen;
  std::string registry;
  std::vector<std::string> workers;  // as given
  std::vector<std::string> worker_addresses;
  std::vector<t2::dispatcher::DnsTarget> worker_names;
  std::string port_file;
  std::string metrics_listen, metrics_port_file;
  int first_pass_max_tokens = 32;
  bool cem_sequential = false;
  int shutdown_grace_seconds = 10;
};

absl::StatusOr<Config> ParseConfig(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  t2::FlagSpec spec{.value_flags = {"listen", "registry", "worker", "port-file", "metrics-listen",
                                    "metrics-port-file", "first-pass-max-tokens", "shutdown-grace-seconds"},
                    .bool_flags = {"cem-sequential", "help"}};
  t2::rpc::AddServerSecurityFlags(spec);
  T2_ASSIGN_OR_RETURN(t2::Flags flags, t2::Flags::Parse(args, spec));
  if (flags.Has("help")) return absl::CancelledError("help");
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  }
  Config c;
  c.listen = flags.Get("listen", "127.0.0.1:50050");
  T2_ASSIGN_OR_RETURN(c.security, t2::rpc::SecurityFromFlags(flags, /*server=*/true));
  c.health_listen = flags.Get("health-listen", "");
  c.registry = flags.Get("registry", "");
  if (c.registry.empty()) return absl::InvalidArgumentError("--registry is required");
  c.workers = flags.GetAll("worker");
  if (c.workers.empty())
    return absl::InvalidArgumentError("--worker is required (repeat it for several)");
  for (const std::string& w : c.workers) {
    if (w.empty()) return absl::InvalidArgumentError("--worker must not be empty");
    if (t2::dispatcher::IsDnsTarget(w)) {
      T2_ASSIGN_OR_RETURN(t2::dispatcher::DnsTarget target, t2::dispatcher::ParseDnsTarget(w));
      c.worker_names.push_back(std::move(target));
    } else {
      c.worker_addresses.push_back(w);
    }
  }
  c.port_file = flags.Get("port-file", "");
  c.metrics_listen = flags.Get("metrics-listen", "");
  c.metrics_port_file = flags.Get("metrics-port-file", "");
  T2_ASSIGN_OR_RETURN(int64_t max_tokens, flags.GetInt("first-pass-max-tokens", 32));
  if (max_tokens < 1 || max_tokens > 4096) {
    return absl::InvalidArgumentError("--first-pass-max-tokens must be in [1, 4096]");
  }
  c.first_pass_max_tokens = static_cast<int>(max_tokens);
  T2_ASSIGN_OR_RETURN(int64_t grace, flags.GetInt("shutdown-grace-seconds", 10));
  if (grace < 0 || grace > 3600)
    return absl::InvalidArgumentError("--shutdown-grace-seconds must be in [0, 3600]");
  c.shutdown_grace_seconds = static_cast<int>(grace);
  c.cem_sequential = flags.Has("cem-sequential");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  t2::rpc::BlockShutdownSignals();
  absl::StatusOr<Config> config = ParseConfig(argc, argv);
  if (!config.ok()) {
    if (absl::IsCancelled(config.status())) {
      std::fputs(kUsage, stdout);
      std::fputs(t2::rpc::kServerSecurityUsage, stdout);
      std::fputs(t2::metrics::kMetricsFlagsUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "t2-dispatcher: %s\n\n%s%s%s",
                 std::string(config.status().message()).c_str(), kUsage,
                 t2::rpc::kServerSecurityUsage, t2::metrics::kMetricsFlagsUsage);
    return 2;
  }
  // The dispatcher serves with these and calls the registry and workers with its certificate
  // (or token).
  auto server_credentials = t2::rpc::MakeServerCredentials(config->security, config->listen);
  auto channel_credentials = t2::rpc::MakeChannelCredentials(config->security);
  for (const absl::Status& s : {server_credentials.status(), channel_credentials.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "t2-dispatcher: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }

  auto metrics = t2::metrics::StartServiceMetrics(config->metrics_listen, config->metrics_port_file);
  if (!metrics.ok()) {
    t2::LogError(absl::StrCat("t2-dispatcher: ", metrics.status().message()));
    return 1;
  }
  using namespace t2::dispatcher;
  grpc::ChannelArguments registry_args;
  registry_args.SetMaxReceiveMessageSize(t2::rpc::kMaxClientReceiveMessageBytes);
  ExpertResolver resolver(
      grpc::CreateCustomChannel(config->registry, *channel_credentials, registry_args), {});
  WorkerPool pool({.addresses = config->worker_addresses,
                   .dns_targets = config->worker_names,
                   .credentials = *channel_credentials});
  DispatcherMetrics dispatcher_metrics(*metrics->registry);
  auto state = DispatcherMetrics::StateCollector(pool, resolver);
  metrics->Add(state);
  DispatcherService service(
      pool, resolver,
      {.first_pass = {.generate_max_tokens = config->first_pass_max_tokens},
       .adapt = {.max_concurrent_candidates = config->cem_sequential ? 1 : 0},
       .metrics = &dispatcher_metrics});

  absl::StatusOr<t2::rpc::RunningServer> server =
      t2::rpc::StartServer({.address = config->listen,
                            .health_services = {t2::v1::Dispatcher::service_full_name()},
                            .metrics = metrics->registry.get(),
                            .credentials = *server_credentials,
                            .health_address = config->health_listen},
                           {&service});
  if (!server.ok()) {
    t2::LogError(absl::StrCat("t2-dispatcher: ", server.status().message()));
    return 1;
  }
  t2::LogInfo(absl::StrCat("t2-dispatcher listening on ", server->address,
                           "; waiting for the registry at ", config->registry));

  // Serving is declared once the registry answers: before that every expert lookup would fail.
  std::atomic<bool> stopping{false};
  std::thread ready([&] {
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
    server->SetServing(true);
    if (!config->port_file.empty()) {
      absl::Status written = t2::WriteFileAtomically(config->port_file, server->address);
      if (!written.ok()) t2::LogError(absl::StrCat("--port-file: ", written.message()));
    }
    t2::LogInfo(absl::StrCat("t2-dispatcher serving on ", server->address, " with ", pool.size(),
                             " worker(s) from ", absl::StrJoin(config->workers, ", ")));
  });

  int signal = t2::rpc::WaitForShutdownSignal();
  t2::LogInfo(absl::StrCat("t2-dispatcher: signal ", signal, ", draining for up to ",
                           config->shutdown_grace_seconds, " s"));
  stopping = true;
  ready.join();
  server->SetServing(false);
  // In-flight calls may finish within the grace period; after it gRPC cancels them, which the
  // handlers see and pass on to their worker calls.
  server->server->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(config->shutdown_grace_seconds));
  server->server->Wait();
  metrics->endpoint.reset();  // no scrape may read the pool or resolver while they are destroyed
  t2::LogInfo("t2-dispatcher stopped");
  return 0;
}
