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
#include "t2/common/env.h"
#include "t2/common/flags.h"
#include "t2/common/log.h"
#include "t2/metrics/service_metrics.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "t2/rpc/status.h"
#include "t2/v1/registry.grpc.pb.h"
#include "worker_service.h"

namespace {

constexpr const char* kUsage = R"(usage: t2-worker [options]

  --model SPEC            .gguf file, HF checkpoint folder, or "default" (default: default)
  --listen HOST:PORT      address to serve on; port 0 picks a free one (default 127.0.0.1:50053)
  --port-file FILE        write the bound HOST:PORT here once listening
  --registry HOST:PORT    expert registry; without it only the base model is served
  --device D, --dtype T   see t2 generate --help (default auto)
  --threads N             CPU threads (default: one per core)
  --max-batch-size N      sequences decoded together (default 8)
  --max-queue N           waiting requests beyond this get RESOURCE_EXHAUSTED (default 64)
  --max-context N         cap on prompt + max_new_tokens (default 2048; 0 = the model's)
  --prefix-cache-mb N     keys/values of recent prompts kept so that a prompt beginning like
                          one of them (a system prompt, the first pass's instructions) skips
                          that part of its prefill (default 64; 0 = off)
  --svf-targets T         matrices experts adapt: mlp | attn | all (default mlp)
  --svf-mode M            auto | merged | factored (default auto)
  --svf-cache-dir DIR     SVD cache folder (default: beside the model)
  --expert-dir DIR        local copies of fetched experts (default $T2_HOME/worker-experts)
  --max-loaded-experts N  adapters kept loaded (default 32)
  --drain-seconds S       how long SIGTERM waits for running requests (default 30)
)";

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
  model.set_targets(generator.options().svf->targets);
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

}  // namespace

int main(int argc, char** argv) {
  t2::rpc::BlockShutdownSignals();
  std::vector<std::string> args(argv + 1, argv + argc);
  t2::FlagSpec spec{.value_flags = {"model", "listen", "port-file", "metrics-listen", "metrics-port-file",
                                    "registry", "device", "dtype", "threads",
                                    "max-batch-size", "max-queue", "max-context", "prefix-cache-mb", "svf-targets",
                                    "svf-mode", "svf-cache-dir", "expert-dir", "max-loaded-experts", "drain-seconds"},
                    .bool_flags = {"help"}};
  t2::rpc::AddServerSecurityFlags(spec);
  auto flags = t2::Flags::Parse(args, spec);
  if (!flags.ok()) {
    std::cerr << "t2-worker: " << flags.status().message() << "\n"
              << kUsage << t2::rpc::kServerSecurityUsage << t2::metrics::kMetricsFlagsUsage;
    return 2;
  }
  if (flags->Has("help")) {
    std::cout << kUsage << t2::rpc::kServerSecurityUsage << t2::metrics::kMetricsFlagsUsage;
    return 0;
  }
  // The worker serves with this and calls the registry with it (its certificate, or token).
  auto security = t2::rpc::SecurityFromFlags(*flags, /*server=*/true);
  if (!security.ok()) return Fail(security.status());
  const std::string listen = flags->Get("listen", "127.0.0.1:50053");
  auto server_credentials = t2::rpc::MakeServerCredentials(*security, listen);
  if (!server_credentials.ok()) return Fail(server_credentials.status());
  auto channel_credentials = t2::rpc::MakeChannelCredentials(*security);
  if (!channel_credentials.ok()) return Fail(channel_credentials.status());
  auto model_path = t2::ResolveModelPath(flags->Get("model", "default"));
  if (!model_path.ok()) return Fail(model_path.status());

  t2::engine::GeneratorOptions options;
  options.model = *model_path;
  options.device = flags->Get("device", "auto");
  options.dtype = flags->Get("dtype", "auto");
  t2::engine::SvfOptions svf;
  svf.targets = flags->Get("svf-targets", "mlp");
  svf.mode = flags->Get("svf-mode", "auto");
  svf.cache_dir = flags->Get("svf-cache-dir", "");
  options.svf = svf;
  // Ranges checked here, before any narrowing: 4294967297 must not become 1.
  for (auto [flag, field, fallback, min, max] :
       {std::tuple{"threads", &options.cpu_threads, 0, 0, 1024},
        std::tuple{"max-batch-size", &options.max_batch_size, 8, 1, 4096},
        std::tuple{"max-queue", &options.max_queue, 64, 0, 1 << 20}}) {
    auto v = flags->GetInt(flag, fallback, min, max);
    if (!v.ok()) return Fail(v.status());
    *field = static_cast<int32_t>(*v);
  }
  auto max_context = flags->GetInt("max-context", 2048, 0, int64_t{1} << 24);
  auto max_loaded = flags->GetInt("max-loaded-experts", 32, 1, 1 << 16);
  auto drain_seconds = flags->GetDouble("drain-seconds", 30, 0, 24 * 3600);
  auto prefix_cache_mb = flags->GetInt("prefix-cache-mb", 64, 0, int64_t{1} << 20);
  for (const auto* s : {&max_context.status(), &max_loaded.status(), &drain_seconds.status(),
                        &prefix_cache_mb.status()}) {
    if (!s->ok()) return Fail(*s);
  }
  options.max_context = *max_context;
  options.prefix_cache_bytes = *prefix_cache_mb << 20;
  if (auto s = options.Validate(); !s.ok()) return Fail(s);

  // Listen before loading: health answers NOT_SERVING and calls UNAVAILABLE meanwhile.
  auto metrics = t2::metrics::StartServiceMetrics(flags->Get("metrics-listen", ""), flags->Get("metrics-port-file", ""));
  if (!metrics.ok()) return Fail(metrics.status());
  t2::worker::WorkerService service;
  auto server = t2::rpc::StartServer({.address = listen,
                                      .health_services = {t2::v1::Worker::service_full_name()},
                                      .metrics = metrics->registry.get(),
                                      .credentials = *server_credentials,
                                      .health_address = flags->Get("health-listen", "")},
                                     {&service});
  if (!server.ok()) return Fail(server.status());
  if (flags->Has("port-file")) {
    auto s = t2::WriteFileAtomically(flags->Get("port-file", ""), server->address + "\n");
    if (!s.ok()) return Fail(s);
  }
  t2::LogInfo(absl::StrCat("t2-worker listening on ", server->address, ", loading ", model_path->string()));
  auto generator = t2::engine::Generator::Create(options);
  if (!generator.ok()) return Fail(generator.status());

  std::shared_ptr<grpc::Channel> registry;
  if (flags->Has("registry")) {
    registry = grpc::CreateChannel(flags->Get("registry", ""), *channel_credentials);
  }
  std::filesystem::path expert_dir = flags->Get("expert-dir", (t2::T2Home() / "worker-experts").string());
  t2::worker::ExpertCache experts(**generator, registry, expert_dir, static_cast<int>(*max_loaded));
  t2::worker::WorkerMetrics worker_metrics(*metrics->registry);
  experts.SetEvents(worker_metrics.CacheEvents());
  experts.StartWatch();
  const std::string model_name = t2::ModelName(*model_path);
  auto state = t2::worker::WorkerMetrics::StateCollector(
      **generator, experts,
      {model_name, (*generator)->base_fingerprint(), (*generator)->device_name(), (*generator)->dtype_name()});
  metrics->Add(state);
  service.Attach(**generator, experts, model_name, &worker_metrics);
  std::atomic<bool> stopping{false};
  // Experts for this model can only be published once the registry knows it: SERVING waits
  // for the registration (a registry that is down delays it at most 10 s, then it goes on
  // retrying in the background).
  std::thread registrar;
  if (registry) {
    auto registered = std::make_shared<std::promise<void>>();
    auto done = registered->get_future();
    registrar = std::thread([&, registered] {
      RegisterBaseModel(registry, **generator, model_name, stopping);
      registered->set_value();
    });
    done.wait_for(std::chrono::seconds(10));
  }
  server->SetServing(true);
  t2::LogInfo(absl::StrCat("t2-worker serving ", model_name, " on ", server->address, " (",
                           (*generator)->device_name(), ", ", (*generator)->dtype_name(), ")"));

  int signal = t2::rpc::WaitForShutdownSignal();
  t2::LogInfo(absl::StrCat("t2-worker: signal ", signal, ", draining"));
  stopping = true;
  server->SetServing(false);
  service.StartDraining();
  const absl::Time drain_deadline = absl::Now() + absl::Seconds(*drain_seconds);
  (*generator)->Drain(drain_deadline);
  // Streams whose requests have finished write their last message and return.
  server->server->Shutdown(absl::ToChronoTime(drain_deadline + absl::Seconds(1)));
  server->server->Wait();
  if (registrar.joinable()) registrar.join();
  metrics->endpoint.reset();  // no scrape may read the generator while it is destroyed
  t2::LogInfo("t2-worker stopped");
  return 0;
}
