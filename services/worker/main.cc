// t2-worker: serves one model over gRPC (t2.v1.Worker). Thin: flags, wiring, lifecycle.
//
// Lifecycle: listen first (health NOT_SERVING, so orchestrators can tell "loading" from
// "dead"), load the model and its SVD factors, register the base model with the registry,
// then SERVING. SIGTERM/SIGINT: NOT_SERVING, new calls UNAVAILABLE, running and queued
// requests finish (up to --drain-seconds), exit 0.
#include <atomic>
#include <future>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "expert_cache.h"
#include "t2/common/atomic_file.h"
#include "t2/common/command_line.h"
#include "t2/common/env.h"
#include "t2/common/log.h"
#include "t2/metrics/service_metrics.h"
#include "t2/model/device_flags.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "t2/rpc/status.h"
#include "t2/v1/registry.grpc.pb.h"
#include "worker_service.h"

namespace {

struct Config {
  std::string model = "default";
  std::string listen = "127.0.0.1:50053";
  std::string port_file;
  std::string registry;  // empty: only the base model is served
  // The worker's defaults for a shared server, where the library's suit one process.
  t2::engine::GeneratorOptions generator{.max_batch_size = 8, .max_queue = 64, .max_context = 2048};
  t2::engine::SvfOptions svf;
  int64_t prefix_cache_mb = 64;
  std::string expert_dir = (t2::T2Home() / "worker-experts").string();
  int max_loaded_experts = 32;
  double drain_seconds = 30;
  t2::rpc::Security security;
  t2::metrics::MetricsFlags metrics;
};

void AddFlags(t2::CommandLine& command_line, Config& c) {
  command_line.add_option("--model", c.model, ".gguf file, HF checkpoint folder, or \"default\"")
      ->type_name("SPEC");
  command_line.add_option("--listen", c.listen, "address to serve on; port 0 picks a free one")
      ->type_name("HOST:PORT");
  command_line
      .add_option("--port-file", c.port_file, "write the bound HOST:PORT here once listening")
      ->type_name("FILE");
  command_line
      .add_option("--registry", c.registry,
                  "expert registry; without it only the base model is served")
      ->type_name("HOST:PORT");
  t2::model::AddDeviceFlags(command_line, c.generator.device, c.generator.dtype);
  command_line.add_option("--threads", c.generator.cpu_threads, "CPU threads (0: one per core)")
      ->type_name("N")
      ->transform(t2::IntIn(0, 1024));
  command_line
      .add_option("--max-batch-size", c.generator.max_batch_size, "sequences decoded together")
      ->type_name("N")
      ->transform(t2::IntIn(1, 4096));
  command_line
      .add_option("--max-queue", c.generator.max_queue,
                  "waiting requests beyond this get RESOURCE_EXHAUSTED")
      ->type_name("N")
      ->transform(t2::IntIn(0, 1 << 20));
  command_line
      .add_option("--max-context", c.generator.max_context,
                  "cap on prompt + max_new_tokens (0: the model's)")
      ->type_name("N")
      ->transform(t2::IntIn(0, int64_t{1} << 24));
  command_line
      .add_option(
          "--prefix-cache-mb", c.prefix_cache_mb,
          "keys/values of recent prompts kept so that a prompt beginning like one of them (a "
          "system prompt, the first pass's instructions) skips that part of its prefill (0: off)")
      ->type_name("MB")
      ->transform(t2::IntIn(0, int64_t{1} << 20));
  t2::AddEnumOption(command_line, "--svf-targets", c.svf.targets, t2::svf::kTargetSets,
                    t2::svf::TargetSetName, "matrices experts adapt");
  t2::AddEnumOption(command_line, "--svf-mode", c.svf.mode, t2::engine::kSvfModes,
                    t2::engine::SvfModeName, "how experts are applied");
  command_line
      .add_option("--svf-cache-dir", c.svf.cache_dir, "SVD cache folder (empty: beside the model)")
      ->type_name("DIR");
  command_line.add_option("--expert-dir", c.expert_dir, "local copies of fetched experts")
      ->type_name("DIR");
  command_line.add_option("--max-loaded-experts", c.max_loaded_experts, "adapters kept loaded")
      ->type_name("N")
      ->transform(t2::IntIn(1, 1 << 16));
  command_line
      .add_option("--drain-seconds", c.drain_seconds, "how long SIGTERM waits for running requests")
      ->type_name("S")
      ->transform(t2::NumberIn(0, 24 * 3600));
  t2::rpc::AddSecurityFlags(command_line, c.security, /*server=*/true);
  t2::metrics::AddMetricsFlags(command_line, c.metrics);
}

int Fail(const absl::Status& status) {
  std::cerr << "t2-worker: " << status << "\n";
  return 1;
}

// Tells the registry which base model this worker serves, so that it can validate experts
// published for it. Retries while the registry is away (until it answers or the worker stops);
// a refusal is final: retrying ALREADY_EXISTS (a peer registered this fingerprint under another
// name or targets) or PERMISSION_DENIED would only repeat it, so it is logged once and the
// worker serves without the registration.
void RegisterBaseModel(const std::shared_ptr<grpc::Channel>& channel, const t2::engine::Generator& generator,
                       const std::string& name, const std::atomic<bool>& stopping) {
  auto stub = t2::v1::Registry::NewStub(channel);
  t2::v1::BaseModel model;
  model.set_fingerprint(generator.base_fingerprint());
  model.set_name(name);
  model.set_targets(std::string(t2::svf::TargetSetName(generator.options().svf->targets)));
  for (const auto& [matrix, rank] : generator.target_ranks()) (*model.mutable_target_ranks())[matrix] = rank;
  for (int attempt = 0; !stopping; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    t2::v1::BaseModel reply;
    grpc::Status status = stub->RegisterBaseModel(&context, model, &reply);
    if (status.ok()) {
      t2::LogInfo(absl::StrCat("registered base model ", name, " (", model.fingerprint().substr(0, 12), ")"));
      return;
    }
    const grpc::StatusCode code = status.error_code();
    if (code != grpc::StatusCode::UNAVAILABLE && code != grpc::StatusCode::DEADLINE_EXCEEDED &&
        code != grpc::StatusCode::RESOURCE_EXHAUSTED) {
      t2::LogError(absl::StrCat("registry refused base model ", name, " (",
                                model.fingerprint().substr(0, 12),
                                "), not retrying: ", t2::rpc::FromGrpc(status).ToString()));
      return;
    }
    if (attempt % 10 == 0) {
      t2::LogWarning(absl::StrCat("registry: RegisterBaseModel failed (will retry): ", status.error_message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// Experts for this model can only be published once the registry knows it: SERVING waits for
// the registration (a registry that is down delays it at most 10 s, then it goes on retrying
// in the background). No thread without a registry.
std::thread RegisterWhileStarting(const std::shared_ptr<grpc::Channel>& registry,
                                  const t2::engine::Generator& generator,
                                  const std::string& model_name,
                                  const std::atomic<bool>& stopping) {
  if (!registry) return {};
  auto registered = std::make_shared<std::promise<void>>();
  auto done = registered->get_future();
  std::thread registrar([&generator, &stopping, registry, model_name, registered] {
    RegisterBaseModel(registry, generator, model_name, stopping);
    registered->set_value();
  });
  done.wait_for(std::chrono::seconds(10));
  return registrar;
}

// Running and queued requests finish (up to `drain_seconds`); then streams whose requests have
// finished write their last message and return.
void Drain(t2::worker::WorkerService& service, t2::engine::Generator& generator,
           grpc::Server& server, double drain_seconds) {
  service.StartDraining();
  const absl::Time drain_deadline = absl::Now() + absl::Seconds(drain_seconds);
  generator.Drain(drain_deadline);
  server.Shutdown(absl::ToChronoTime(drain_deadline + absl::Seconds(1)));
  server.Wait();
}

// Listens, loads the model, serves until SIGTERM/SIGINT, drains. The exit code.
int Serve(const Config& config, const t2::engine::GeneratorOptions& options,
          const std::shared_ptr<grpc::ServerCredentials>& server_credentials,
          const std::shared_ptr<grpc::ChannelCredentials>& channel_credentials) {
  // Listen before loading: health answers NOT_SERVING and calls UNAVAILABLE meanwhile.
  auto metrics = t2::metrics::StartServiceMetrics(config.metrics);
  if (!metrics.ok()) return Fail(metrics.status());
  // A thread for every request the scheduler may hold (a Score waits on one until it is
  // scored), and a few for requests being prepared.
  t2::worker::WorkerService service(
      {.max_threads = options.max_batch_size + options.max_queue + 16, .max_queue = 4096});
  auto server = t2::rpc::StartServer({.address = config.listen,
                                      .health_services = {t2::v1::Worker::service_full_name()},
                                      .metrics = metrics->registry.get(),
                                      .credentials = server_credentials,
                                      .health_address = config.security.health_listen},
                                     {&service});
  if (!server.ok()) return Fail(server.status());
  if (!config.port_file.empty()) {
    auto s = t2::WriteFileAtomically(config.port_file, server->address + "\n");
    if (!s.ok()) return Fail(s);
  }
  t2::LogInfo(absl::StrCat("t2-worker listening on ", server->address, ", loading ",
                           options.model.string()));
  auto generator = t2::engine::Generator::Create(options);
  if (!generator.ok()) return Fail(generator.status());

  std::shared_ptr<grpc::Channel> registry;
  if (!config.registry.empty())
    registry = grpc::CreateChannel(config.registry, channel_credentials);
  t2::worker::ExpertCache experts(**generator, registry, config.expert_dir,
                                  config.max_loaded_experts);
  t2::worker::WorkerMetrics worker_metrics(*metrics->registry);
  experts.SetEvents(worker_metrics.CacheEvents());
  experts.StartWatch();
  const std::string model_name = t2::ModelName(options.model);
  auto state = t2::worker::WorkerMetrics::StateCollector(
      **generator, experts,
      {model_name, (*generator)->base_fingerprint(), (*generator)->device_name(), (*generator)->dtype_name()});
  metrics->Add(state);
  service.Attach(**generator, experts, model_name, &worker_metrics);
  std::atomic<bool> stopping{false};
  std::thread registrar = RegisterWhileStarting(registry, **generator, model_name, stopping);
  server->SetServing(true);
  t2::LogInfo(absl::StrCat("t2-worker serving ", model_name, " on ", server->address, " (",
                           (*generator)->device_name(), ", ", (*generator)->dtype_name(), ")"));

  int signal = t2::rpc::WaitForShutdownSignal();
  t2::LogInfo(absl::StrCat("t2-worker: signal ", signal, ", draining"));
  stopping = true;
  server->SetServing(false);
  Drain(service, **generator, *server->server, config.drain_seconds);
  if (registrar.joinable()) registrar.join();
  metrics->endpoint.reset();  // no scrape may read the generator while it is destroyed
  t2::LogInfo("t2-worker stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  t2::rpc::BlockShutdownSignals();
  t2::CommandLine command_line("t2-worker", "Serves one model over gRPC (t2.v1.Worker).");
  Config config;
  AddFlags(command_line, config);
  if (auto exit_code = command_line.Parse(argc, argv)) return *exit_code;
  // The worker serves with this and calls the registry with it (its certificate, or token).
  if (auto s = t2::rpc::CheckSecurity(config.security, /*server=*/true); !s.ok()) return Fail(s);
  auto server_credentials = t2::rpc::MakeServerCredentials(config.security, config.listen);
  if (!server_credentials.ok()) return Fail(server_credentials.status());
  auto channel_credentials = t2::rpc::MakeChannelCredentials(config.security);
  if (!channel_credentials.ok()) return Fail(channel_credentials.status());
  auto model_path = t2::ResolveModelPath(config.model);
  if (!model_path.ok()) return Fail(model_path.status());

  t2::engine::GeneratorOptions options = config.generator;
  options.model = *model_path;
  options.svf = config.svf;
  options.prefix_cache_bytes = config.prefix_cache_mb << 20;
  if (auto s = options.Validate(); !s.ok()) return Fail(s);
  return Serve(config, options, *server_credentials, *channel_credentials);
}
