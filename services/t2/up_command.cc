// t2 up: the whole stack on this machine — registry, one worker, dispatcher — on loopback.
// Mutual TLS between all of them and with the caller, from a throwaway CA made at each start
// (DIR/pki), each service's certificate name mapped to the roles it needs (DIR/pki/auth).
// Starts them in dependency order, waits for each to report SERVING, prints the addresses,
// and stops everything (SIGTERM, then SIGKILL after a grace period) on Ctrl-C, on SIGTERM, or
// when any of them dies. With --once TEXT it sends one request through the dispatcher,
// prints the first pass's choice and the answer, and stops.
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "commands.h"
#include "deploy_dir.h"
#include "job.h"
#include "stack_client.h"
#include "t2/common/command_line.h"
#include "t2/common/env.h"
#include "t2/common/process.h"
#include "t2/common/status.h"
#include "t2/rpc/security.h"
#include "t2/rpc/throwaway_pki.h"
#include "t2/tasks/builtin.h"
#include "train_setup.h"

namespace t2::cli {
namespace {

// How to call the stack t2 up starts (its --help's footer).
constexpr const char* kUpFooter =
    R"(Every start makes a new throwaway CA and certificates in DIR/pki (the CA's key is never
written): the services accept only clients with a certificate from it. Call the stack with
  --tls-ca DIR/pki/ca.pem --tls-cert DIR/pki/client.pem --tls-key DIR/pki/client.key
(client.pem may call every method; see README, Security).)";

// The certificate names t2 up makes and the roles each has on the stack's servers.
constexpr const char* kStackAuthFile =
    R"(# Written by t2 up: who may call what on this stack (README, Security).
# The dispatcher reads experts, stores Adapt's mixtures and sends generation to the worker.
cert dispatcher read,adapt,generate
# The worker reads experts and registers its base model.
cert worker read,admin
# t2 up --experts' trainer job registers the model, publishes experts and moves aliases.
cert trainer read,publish,admin
# Whoever holds client.key: everything.
cert client generate,adapt,publish,admin,read
)";

// The recipe `--experts` trains with (bench/README.md measures what it gives).
constexpr int kExpertBatchSize = 16;
constexpr int kExpertValidationSize = 100;
constexpr int kExpertEvalEvery = 10;
constexpr double kExpertLearningRate = 2e-3;  // the reference implementation's
// The default model answers most of the built-in tasks' questions wrong: without a baseline,
// its ±1 rewards degraded it (bench/README.md, "Trainer").
constexpr const char* kExpertRewardBaseline = "mean";

using grpc::health::v1::HealthCheckResponse;

// The service binaries sit beside t2 when installed, or in sibling folders of a build tree.
std::string FindBinary(const std::string& name) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  auto dir = self.parent_path();
  for (const auto& candidate : {dir / name, dir.parent_path() / name.substr(3) / name}) {
    if (std::filesystem::exists(candidate)) return candidate.string();
  }
  return "";
}

// The stack's certificates: each service's own, and `client` for t2 up's own calls.
rpc::Security StackSecurity(const std::filesystem::path& pki, const std::string& name) {
  return {.cert_file = (pki / (name + ".pem")).string(),
          .key_file = (pki / (name + ".key")).string(),
          .ca_file = (pki / "ca.pem").string()};
}

// The flags that make a service serve with its certificate, accept only certificates from the
// stack's CA, and check roles.
std::vector<std::string> ServiceSecurityFlags(const std::filesystem::path& pki,
                                              const std::string& name) {
  return {"--tls-cert",
          (pki / (name + ".pem")).string(),
          "--tls-key",
          (pki / (name + ".key")).string(),
          "--tls-ca",
          (pki / "ca.pem").string(),
          "--require-client-cert",
          "--auth-file",
          (pki / "auth").string()};
}

// `client`: t2 up's own credentials (the `client` certificate), made once per run.
bool Serving(const std::shared_ptr<grpc::ChannelCredentials>& client, const std::string& address) {
  auto status = CheckHealth(grpc::CreateChannel(address, client), "", 2);
  return status.ok() && *status == HealthCheckResponse::SERVING;
}

struct Service {
  std::string name;
  ChildProcess process;
  std::string address;
  std::string metrics;  // HOST:PORT of its /metrics endpoint
  std::filesystem::path log;
};

// Starts one service and waits until it is SERVING; false (with its log's tail) otherwise.
bool Launch(Service& s, const std::string& binary, std::vector<std::string> args,
            const std::string& host, int port, const std::filesystem::path& run_dir,
            const std::filesystem::path& pki,
            const std::shared_ptr<grpc::ChannelCredentials>& client, std::chrono::seconds timeout) {
  const auto port_file = run_dir / (s.name + ".port");
  std::filesystem::remove(port_file);
  s.log = run_dir / (s.name + ".log");
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::vector<std::string> security = ServiceSecurityFlags(pki, s.name);
  argv.insert(argv.end(), security.begin(), security.end());
  // Metrics on a free port of the same host, each service's own (t2 up prints them).
  const auto metrics_file = run_dir / (s.name + ".metrics.port");
  std::filesystem::remove(metrics_file);
  argv.insert(argv.end(), {"--listen", absl::StrCat(host, ":", port), "--port-file", port_file.string(),
                           "--metrics-listen", absl::StrCat(host, ":0"), "--metrics-port-file", metrics_file.string()});
  std::cerr << "[t2 up] starting " << s.name << " (log: " << s.log.string() << ")\n";
  if (!s.process.Start(argv, s.log)) {
    std::cerr << "[t2 up] cannot start " << binary << "\n";
    return false;
  }
  s.address = WaitForFile(port_file, s.process, timeout);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!s.address.empty() && s.process.running() && std::chrono::steady_clock::now() < deadline) {
    if (Serving(client, s.address)) {  // the metrics endpoint starts before the gRPC server
      s.metrics = WaitForFile(metrics_file, s.process, std::chrono::seconds(5));
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cerr << "[t2 up] " << s.name << " did not become ready; its log ends with:\n" << Tail(s.log) << "\n";
  return false;
}

// A port nothing listens on now (the kernel's pick for port 0), for a program that cannot
// report the port it bound itself; 0 if none could be had.
int FreePort(const std::string& host) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = host == "0.0.0.0" ? htonl(INADDR_ANY) : htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path == nullptr ? "/usr/bin:/bin" : path, ':')) {
    const std::filesystem::path candidate = std::filesystem::path(std::string(dir)) / program;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

// Prometheus over the stack: jobs named as the alert rules and dashboards expect
// (deploy/prometheus), the rules themselves when this build's source tree has them. Waits
// until it answers /-/ready; false (with its log's tail) otherwise.
bool LaunchPrometheus(Service& s, const std::vector<const Service*>& targets, const std::string& host, int port,
                      const std::filesystem::path& dir, const std::filesystem::path& run_dir) {
  const std::string binary = FindOnPath("prometheus");
  if (binary.empty()) {
    std::cerr << "[t2 up] --prometheus: no `prometheus` on PATH (scripts/setup.sh installs Debian's)\n";
    return false;
  }
  if (port == 0) port = FreePort(host);
  const std::filesystem::path config = run_dir / "prometheus.yml";
  {
    std::ofstream out(config);
    out << "# Written by t2 up --prometheus: this stack's services, scraped every 5 s.\n"
        << "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n";
    const std::filesystem::path rules = BuiltDeployDir() / "prometheus/rules/t2.rules.yml";
    if (std::filesystem::exists(rules)) out << "rule_files:\n  - " << rules.string() << "\n";
    out << "scrape_configs:\n";
    for (const Service* t : targets) {
      out << "  - job_name: t2-" << t->name << "\n    static_configs:\n      - targets: ['" << t->metrics << "']\n";
    }
    if (!out) {
      std::cerr << "[t2 up] --prometheus: cannot write " << config.string() << "\n";
      return false;
    }
  }
  s.log = run_dir / (s.name + ".log");
  s.address = absl::StrCat(host, ":", port);
  std::cerr << "[t2 up] starting prometheus (log: " << s.log.string() << ")\n";
  if (!s.process.Start({binary, "--config.file=" + config.string(), "--storage.tsdb.path=" + (dir / "prometheus").string(),
                        "--web.listen-address=" + s.address},
                       s.log)) {
    std::cerr << "[t2 up] cannot start " << binary << "\n";
    return false;
  }
  httplib::Client client(host, port);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(2, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (s.process.running() && std::chrono::steady_clock::now() < deadline) {
    auto ready = client.Get("/-/ready");
    if (ready && ready->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::cerr << "[t2 up] prometheus did not become ready; its log ends with:\n" << Tail(s.log) << "\n";
  return false;
}

// Runs the trainer job for each task against the stack's registry; prints a summary line per
// expert. A failed job is reported and the others still run; returns false if any failed.
bool TrainExperts(const std::vector<std::string>& tasks, const std::filesystem::path& model,
                  const std::string& registry, const std::filesystem::path& pki, int32_t steps) {
  auto credentials = rpc::MakeChannelCredentials(StackSecurity(pki, "trainer"));
  if (!credentials.ok()) {
    std::cerr << "[t2 up] the trainer's certificate: " << credentials.status().message() << "\n";
    return false;
  }
  bool all_ok = true;
  std::vector<std::string> summary;
  for (const std::string& task : tasks) {
    std::cerr << "[t2 up] expert '" << task << "': training (or taking from " << (T2Home() / "experts").string()
              << "), then the publish gate\n";
    trainer::TrainFlags flags;
    flags.model = model.string();
    flags.task = task;
    flags.work_dir = (T2Home() / "experts").string();
    flags.steps = steps;
    flags.batch_size = kExpertBatchSize;
    flags.validation_size = kExpertValidationSize;
    flags.eval_every = kExpertEvalEvery;
    flags.lr = kExpertLearningRate;
    flags.reward_baseline = kExpertRewardBaseline;
    absl::StatusOr<trainer::TrainSetup> setup = trainer::TrainSetupFromFlags(flags);
    absl::StatusOr<trainer::JobResult> result =
        setup.ok()
            ? trainer::RunJob(*setup, {.registry = registry, .registry_credentials = *credentials},
                              std::cerr)
            : absl::StatusOr<trainer::JobResult>(setup.status());
    if (!result.ok()) {
      all_ok = false;
      summary.push_back(absl::StrCat(task, ": failed: ", result.status().message()));
    } else if (result->outcome == trainer::JobOutcome::kPublished) {
      summary.push_back(absl::StrCat(task, ": ", result->expert, " (alias ", task, ")"));
    } else {
      summary.push_back(absl::StrCat(task, ": not published, the base model stays (", result->report.string(), ")"));
    }
  }
  std::cout << "experts:\n";
  for (const std::string& line : summary) std::cout << "  " << line << "\n";
  std::cout << std::flush;
  return all_ok;
}

int StopAll(std::vector<Service*>& services, int code) {
  // Front door first, so that nothing new reaches the worker while it drains.
  for (auto it = services.rbegin(); it != services.rend(); ++it) {
    if ((*it)->process.running()) {
      std::cerr << "[t2 up] stopping " << (*it)->name << "\n";
      (*it)->process.Stop(std::chrono::seconds(30));
    }
  }
  return code;
}

// What `t2 up`'s flags ask for, checked.
struct UpConfig {
  std::string model_spec = "default";
  std::filesystem::path model;  // model_spec resolved
  std::string dir_flag = (T2Home() / "stack").string();
  std::filesystem::path dir;      // dir_flag
  std::filesystem::path run_dir;  // dir/logs
  std::string host = "127.0.0.1";
  int dispatcher_port = 50050;
  int registry_port = 50051;
  int worker_port = 50052;
  int prometheus_port = 0;
  std::string max_batch_size = "8";  // passed on: the worker checks it
  std::optional<std::string> once;
  int32_t max_new_tokens = 128;
  bool experts = false;
  std::string expert_task_list = "math,reasoning,code,cls";
  std::vector<std::string> expert_tasks;  // expert_task_list split
  int32_t expert_steps = 30;
  bool prometheus = false;
  std::map<std::string, std::string> binaries;  // t2-registry, t2-worker, t2-dispatcher
};

void AddUpFlags(CommandLine& command_line, UpConfig& c) {
  command_line
      .add_option("--model", c.model_spec,
                  "the model the worker serves (default: the bundled "
                  "SmolLM2-135M-Instruct)")
      ->type_name("PATH|default");
  command_line
      .add_option("--dir", c.dir_flag,
                  "state and logs: DIR/registry (experts), DIR/worker-experts (the worker's "
                  "downloads), DIR/logs")
      ->type_name("DIR");
  command_line.add_option("--host", c.host, "address to listen on")->type_name("HOST");
  for (auto [flag, port] : {std::pair{"--dispatcher-port", &c.dispatcher_port},
                            std::pair{"--registry-port", &c.registry_port},
                            std::pair{"--worker-port", &c.worker_port}}) {
    command_line.add_option(flag, *port, "0: any free port")
        ->type_name("N")
        ->transform(IntIn(0, 65535));
  }
  command_line.add_option("--max-batch-size", c.max_batch_size, "worker batch slots")
      ->type_name("N");
  command_line
      .add_option("--once", c.once,
                  "send TEXT as a chat turn through the dispatcher (prompt-based first "
                  "pass), print the first pass's choice and the answer, then stop")
      ->type_name("TEXT");
  command_line.add_option("--max-new-tokens", c.max_new_tokens, "for --once")
      ->type_name("N")
      ->transform(IntIn(1, INT32_MAX));
  command_line.add_flag(
      "--experts", c.experts,
      "before serving: train (or take from $T2_HOME/experts) the built-in experts for the model "
      "and publish each one the publish gate passes, moving its alias, so that the first pass "
      "routes requests to real experts (see README: how long it takes)");
  command_line
      .add_option("--expert-tasks", c.expert_task_list, "which built-in experts, comma-separated")
      ->type_name("LIST");
  command_line.add_option("--expert-steps", c.expert_steps, "training steps per expert")
      ->type_name("N")
      ->transform(IntIn(1, INT32_MAX));
  command_line.add_flag(
      "--prometheus", c.prometheus,
      "also start a Prometheus (Debian's `prometheus`) scraping the three services every 5 s, "
      "with the alert rules of deploy/prometheus when this build's source tree has them; prints "
      "its URL");
  command_line.add_option("--prometheus-port", c.prometheus_port, "its port (0: any free port)")
      ->type_name("N")
      ->transform(IntIn(0, 65535));
  command_line.footer(kUpFooter);
}

// Fills `config` from the flags. Returns an exit code when t2 up should stop here, having
// said why: --help 0, a bad flag 2, a missing binary or model 1.
std::optional<int> ParseUpConfig(const std::vector<std::string>& args, UpConfig& config) {
  CommandLine command_line(
      "t2 up",
      "Runs the whole stack (registry, worker, dispatcher) on this machine, until Ctrl-C.");
  AddUpFlags(command_line, config);
  if (auto exit_code = command_line.Parse(args)) return exit_code;
  for (absl::string_view t : absl::StrSplit(config.expert_task_list, ',')) {
    if (!tasks::BuiltinTask(std::string(t)).ok()) {
      std::cerr << "t2 up: --expert-tasks: '" << t << "' is not a built-in task (math, reasoning, code, cls)\n";
      return 2;
    }
    config.expert_tasks.emplace_back(t);
  }
  for (const char* name : {"t2-registry", "t2-worker", "t2-dispatcher"}) {
    config.binaries[name] = FindBinary(name);
    if (config.binaries[name].empty()) {
      std::cerr << "t2 up: cannot find " << name << " next to this t2 binary (build it: scripts/build.sh)\n";
      return 1;
    }
  }
  auto model = ResolveModelPath(config.model_spec);
  if (!model.ok()) {
    std::cerr << "t2 up: " << model.status().message() << "\n";
    return 1;
  }
  config.model = *model;
  config.dir = config.dir_flag;
  config.run_dir = config.dir / "logs";
  return std::nullopt;
}

// A new CA per start in `pki` (certificates of an earlier run, or of a copied folder, are
// never trusted) and the auth file mapping each service's name to its roles. Returns the
// credentials of t2 up's own calls (health while starting, --once), which go as `client`.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeStackPki(
    const UpConfig& config, const std::filesystem::path& pki) {
  std::filesystem::remove_all(pki);
  rpc::PkiOptions pki_options{.names = {"registry", "worker", "dispatcher", "trainer", "client"}};
  if (config.host != "127.0.0.1" && config.host != "localhost")
    pki_options.hosts.push_back(config.host);
  if (absl::Status made = rpc::WriteThrowawayPki(pki, pki_options); !made.ok()) {
    return Annotate(made, "making the stack's certificates");
  }
  std::ofstream auth(pki / "auth");
  auth << kStackAuthFile;
  if (!auth.flush())
    return absl::InternalError(absl::StrCat("cannot write ", (pki / "auth").string()));
  auto client = rpc::MakeChannelCredentials(StackSecurity(pki, "client"));
  if (!client.ok()) {
    return Annotate(client.status(), "the client certificate");
  }
  return *client;
}

struct Stack {
  Service registry{.name = "registry"};
  Service worker{.name = "worker"};
  Service dispatcher{.name = "dispatcher"};
  Service prometheus{.name = "prometheus"};
  std::vector<Service*> started;  // in start order: what StopAll stops
};

// Starts the services in dependency order, each SERVING before the next. False, having said
// why, as soon as one fails; stack.started then names what to stop.
bool LaunchStack(const UpConfig& config, const std::filesystem::path& pki,
                 const std::shared_ptr<grpc::ChannelCredentials>& client, Stack& stack) {
  stack.started.push_back(&stack.registry);
  if (!Launch(stack.registry, config.binaries.at("t2-registry"),
              {"--root", (config.dir / "registry").string()}, config.host, config.registry_port,
              config.run_dir, pki, client, std::chrono::seconds(30))) {
    return false;
  }
  stack.started.push_back(&stack.worker);
  // The first start decomposes the model (cached beside it afterwards, shared by every stack);
  // the experts it downloads are this stack's, kept under --dir like the registry's.
  if (!Launch(stack.worker, config.binaries.at("t2-worker"),
              {"--model", config.model.string(), "--registry", stack.registry.address,
               "--max-batch-size", config.max_batch_size, "--expert-dir",
               (config.dir / "worker-experts").string()},
              config.host, config.worker_port, config.run_dir, pki, client,
              std::chrono::seconds(600))) {
    return false;
  }
  stack.started.push_back(&stack.dispatcher);
  if (!Launch(stack.dispatcher, config.binaries.at("t2-dispatcher"),
              {"--registry", stack.registry.address, "--worker", stack.worker.address}, config.host,
              config.dispatcher_port, config.run_dir, pki, client, std::chrono::seconds(60))) {
    return false;
  }
  if (!config.prometheus) return true;
  stack.started.push_back(&stack.prometheus);
  return LaunchPrometheus(stack.prometheus, {&stack.registry, &stack.worker, &stack.dispatcher},
                          config.host, config.prometheus_port, config.dir, config.run_dir);
}

void PrintStack(const UpConfig& config, const std::filesystem::path& pki, const Stack& stack) {
  std::cout << "t2 stack is up (model " << config.model.filename().string() << ")\n"
            << "  dispatcher  " << stack.dispatcher.address
            << "   <- applications call this (t2.v1.Dispatcher)\n"
            << "  registry    " << stack.registry.address << "   (t2.v1.Registry, experts in "
            << (config.dir / "registry").string() << ")\n"
            << "  worker      " << stack.worker.address << "   (t2.v1.Worker)\n"
            << "  metrics     registry http://" << stack.registry.metrics
            << "/metrics, worker http://" << stack.worker.metrics << "/metrics, dispatcher http://"
            << stack.dispatcher.metrics << "/metrics\n";
  if (config.prometheus) {
    std::cout << "  prometheus  http://" << stack.prometheus.address
              << "   (scrapes the three; config " << (config.run_dir / "prometheus.yml").string()
              << ")\n";
  }
  std::cout << "  logs        " << config.run_dir.string() << "\n"
            << "  TLS         clients pass --tls-ca " << (pki / "ca.pem").string() << " --tls-cert "
            << (pki / "client.pem").string() << " --tls-key " << (pki / "client.key").string()
            << "\n"
            << std::flush;
}

// --once: one chat turn through the dispatcher with the prompt-based first pass.
absl::Status AskOnce(const UpConfig& config, const Stack& stack,
                     const std::shared_ptr<grpc::ChannelCredentials>& client) {
  t2::v1::GenerateRequest request;
  auto* m = request.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content(*config.once);
  request.set_max_new_tokens(static_cast<int32_t>(config.max_new_tokens));
  request.mutable_adaptation()->mutable_prompt()->set_mode(t2::v1::CLASSIFY_MODE_LABEL_SCORE);
  std::cout << "> " << m->content() << "\n";
  return StreamThroughDispatcher(grpc::CreateChannel(stack.dispatcher.address, client), request,
                                 std::cout, std::cout, 300);
}

// Serves until SIGINT or SIGTERM (exit 0) or until a service exits (exit 1), then stops
// everything.
int ServeUntilStopped(const sigset_t& stop_signals, Stack& stack) {
  std::cout << "Ctrl-C stops everything.\n" << std::flush;
  while (true) {
    timespec wait{.tv_sec = 0, .tv_nsec = 200'000'000};
    int signal = sigtimedwait(&stop_signals, nullptr, &wait);
    if (signal == SIGINT || signal == SIGTERM) {
      std::cerr << "\n[t2 up] stopping the stack\n";
      return StopAll(stack.started, 0);
    }
    for (Service* s : stack.started) {
      if (!s->process.running()) {
        std::cerr << "[t2 up] " << s->name << " exited; its log ends with:\n" << Tail(s->log) << "\n";
        return StopAll(stack.started, 1);
      }
    }
  }
}

}  // namespace

int RunUp(const std::vector<std::string>& args) {
  UpConfig config;
  if (std::optional<int> exit_code = ParseUpConfig(args, config)) return *exit_code;
  std::filesystem::create_directories(config.run_dir);
  const std::filesystem::path pki = config.dir / "pki";
  auto client = MakeStackPki(config, pki);
  if (!client.ok()) {
    std::cerr << "t2 up: " << client.status().message() << "\n";
    return 1;
  }

  // Signals are taken synchronously (ServeUntilStopped); children get a clean mask
  // (ChildProcess::Start).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Stack stack;
  if (!LaunchStack(config, pki, *client, stack)) return StopAll(stack.started, 1);
  PrintStack(config, pki, stack);
  if (config.experts && !TrainExperts(config.expert_tasks, config.model, stack.registry.address,
                                      pki, config.expert_steps)) {
    return StopAll(stack.started, 1);
  }
  if (config.once) {
    const absl::Status answered = AskOnce(config, stack, *client);
    if (!answered.ok()) std::cerr << "t2 up: request failed: " << answered << "\n";
    return StopAll(stack.started, answered.ok() ? 0 : 1);
  }
  return ServeUntilStopped(stop_signals, stack);
}

}  // namespace t2::cli
