// What idle streams cost the dispatcher: N concurrent GenerateStream calls held open, each
// waiting for a worker that has not answered yet (a long queue, a slow first token), and the
// dispatcher's threads and resident memory at each N.
//
// The real t2-registry and t2-dispatcher run as processes. The worker is this process's: it
// takes every Generate stream and holds it, writing nothing, until the call is cancelled. It
// is written on gRPC's callback API, so it holds no thread per stream and its own cost stays
// out of the dispatcher's figures. The clients are callback reactors too, spread over several
// connections (a server lets one connection have max_concurrent_streams calls open).
//
//   stream_bench --dispatcher-binary build/services/dispatcher/t2-dispatcher \
//                --registry-binary build/services/registry/t2-registry --streams 2000
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "t2/common/command_line.h"
#include "t2/common/process.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "t2/v1/dispatcher.grpc.pb.h"
#include "t2/v1/worker.grpc.pb.h"
#include "testing/held_worker.h"

namespace {

using Clock = std::chrono::steady_clock;

// The bench's side of the calls: one GenerateStream reactor each, recording how it ended.
class Streams {
 public:
  // Starts a stream on `stub`; it reads until the call ends.
  void Open(t2::v1::Dispatcher::Stub& stub) {
    auto* call = new Call(*this);
    {
      std::lock_guard lock(mu_);
      calls_.push_back(call);
      ++running_;
    }
    call->request.set_prompt("Hold this stream.");
    call->request.set_max_new_tokens(16);
    stub.async()->GenerateStream(&call->context, &call->request, call);
    call->StartRead(&call->message);
    call->StartCall();
  }
  void CancelAll() {
    std::lock_guard lock(mu_);
    for (Call* call : calls_) call->context.TryCancel();
  }
  int running() const {
    std::lock_guard lock(mu_);
    return running_;
  }
  // How the calls that ended, ended: gRPC code name → count.
  std::map<std::string, int> Ended() const {
    std::lock_guard lock(mu_);
    return ended_;
  }
  // Waits (bounded) for every call to end; the reactors are then freed.
  bool WaitAllEnded(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    const bool ended = cv_.wait_for(lock, timeout, [&] { return running_ == 0; });
    if (ended) {
      for (Call* call : calls_) delete call;
      calls_.clear();
    }
    return ended;
  }

 private:
  struct Call final : grpc::ClientReadReactor<t2::v1::GenerateStreamResponse> {
    explicit Call(Streams& owner) : streams(owner) {}
    void OnReadDone(bool ok) override {
      if (ok) StartRead(&message);
    }
    void OnDone(const grpc::Status& status) override { streams.Done(status); }

    Streams& streams;
    grpc::ClientContext context;
    t2::v1::GenerateRequest request;
    t2::v1::GenerateStreamResponse message;
  };

  void Done(const grpc::Status& status) {
    static const char* kNames[] = {"OK",
                                   "CANCELLED",
                                   "UNKNOWN",
                                   "INVALID_ARGUMENT",
                                   "DEADLINE",
                                   "NOT_FOUND",
                                   "ALREADY_EXISTS",
                                   "PERMISSION_DENIED",
                                   "RESOURCE_EXHAUSTED",
                                   "FAILED_PRECONDITION",
                                   "ABORTED",
                                   "OUT_OF_RANGE",
                                   "UNIMPLEMENTED",
                                   "INTERNAL",
                                   "UNAVAILABLE",
                                   "DATA_LOSS",
                                   "UNAUTHENTICATED"};
    const int code = static_cast<int>(status.error_code());
    std::lock_guard lock(mu_);
    ++ended_[code >= 0 && code <= 16 ? kNames[code] : "?"];
    --running_;
    cv_.notify_all();
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Call*> calls_;
  int running_ = 0;
  std::map<std::string, int> ended_;
};

// Threads and resident memory of a process, from /proc/PID/status.
struct ProcessUse {
  int threads = 0;
  double rss_mb = 0;
};

ProcessUse ReadUse(pid_t pid) {
  ProcessUse use;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "Threads:") status >> use.threads;
    if (key == "VmRSS:") {
      double kb = 0;
      status >> kb;
      use.rss_mb = kb / 1024;
    }
    status.ignore(1 << 10, '\n');
  }
  return use;
}

struct Config {
  std::string dispatcher_binary, registry_binary;
  int streams = 2000;
  int step = 500;
  int per_connection = 100;
};

std::string StartAndWait(t2::ChildProcess& child, std::vector<std::string> argv,
                         const std::filesystem::path& dir, const std::string& name) {
  const auto port_file = dir / (name + ".port");
  argv.insert(argv.end(), {"--port-file", port_file.string(), "--insecure-loopback"});
  if (!child.Start(argv, dir / (name + ".log"))) return "";
  std::string address = t2::WaitForFile(port_file, child, std::chrono::seconds(60));
  if (address.empty())
    std::cerr << name << " did not start:\n" << t2::Tail(dir / (name + ".log")) << "\n";
  return address;
}

int Run(const Config& config) {
  const auto dir =
      std::filesystem::temp_directory_path() / absl::StrFormat("t2-stream-bench-%d", getpid());
  std::filesystem::create_directories(dir);
  t2::testing::HeldWorker worker;
  // Far above the bench's streams on the dispatcher's one connection to it.
  auto worker_server =
      t2::rpc::StartServer({.max_threads = 64, .max_concurrent_streams = 1 << 16}, {&worker});
  if (!worker_server.ok()) {
    std::cerr << "worker: " << worker_server.status() << "\n";
    return 1;
  }
  worker_server->SetServing(true);
  t2::ChildProcess registry, dispatcher;
  const std::string registry_address = StartAndWait(
      registry, {config.registry_binary, "--root", (dir / "registry").string()}, dir, "registry");
  if (registry_address.empty()) return 1;
  const std::string dispatcher_address =
      StartAndWait(dispatcher,
                   {config.dispatcher_binary, "--registry", registry_address, "--worker",
                    worker_server->address},
                   dir, "dispatcher");
  if (dispatcher_address.empty()) return 1;

  std::vector<std::unique_ptr<t2::v1::Dispatcher::Stub>> stubs;
  Streams streams;
  std::cout << absl::StrFormat("%-8s %-10s %-30s %-18s %-12s %s\n", "streams", "at worker",
                               "ended (code: count)", "dispatcher threads", "RSS (MB)",
                               "RSS per stream (KB)");
  const ProcessUse idle = ReadUse(dispatcher.pid());
  std::cout << absl::StrFormat("%-8d %-10d %-30s %-18d %-12.1f %s\n", 0, 0, "", idle.threads,
                               idle.rss_mb, "");
  int opened = 0;
  for (int target = config.step; target <= config.streams; target += config.step) {
    for (; opened < target; ++opened) {
      if (opened % config.per_connection == 0) {
        grpc::ChannelArguments args;
        args.SetInt("t2.stream_bench.connection",
                    opened / config.per_connection);  // one connection each
        stubs.push_back(t2::v1::Dispatcher::NewStub(grpc::CreateCustomChannel(
            dispatcher_address, t2::rpc::LoopbackChannelCredentials(), args)));
      }
      streams.Open(*stubs.back());
    }
    // Held when the worker has them all, or given up when they stop arriving.
    const auto give_up = Clock::now() + std::chrono::seconds(60);
    while (worker.open() + (opened - streams.running()) < target && Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // let the dispatcher settle
    const ProcessUse use = ReadUse(dispatcher.pid());
    std::string ended;
    for (const auto& [code, count] : streams.Ended())
      ended += absl::StrFormat("%s: %d ", code, count);
    std::cout << absl::StrFormat(
        "%-8d %-10d %-30s %-18d %-12.1f %.1f\n", target, worker.open(), ended, use.threads,
        use.rss_mb, worker.open() > 0 ? (use.rss_mb - idle.rss_mb) * 1024 / worker.open() : 0.0);
  }
  streams.CancelAll();
  const bool ended = streams.WaitAllEnded(std::chrono::seconds(120));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const ProcessUse after = ReadUse(dispatcher.pid());
  std::cout << absl::StrFormat(
      "after cancelling all: %s, worker holds %d, dispatcher threads %d, RSS %.1f MB\n",
      ended ? "every stream ended" : "STREAMS STILL OPEN", worker.open(), after.threads,
      after.rss_mb);
  dispatcher.Stop();
  registry.Stop();
  worker_server->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  std::filesystem::remove_all(dir);
  return ended ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  t2::CommandLine command_line(
      "stream_bench", "Idle GenerateStream calls on the dispatcher: its threads and memory.");
  Config config;
  command_line.add_option("--dispatcher-binary", config.dispatcher_binary, "t2-dispatcher to run")
      ->type_name("FILE")
      ->required();
  command_line.add_option("--registry-binary", config.registry_binary, "t2-registry to run")
      ->type_name("FILE")
      ->required();
  command_line.add_option("--streams", config.streams, "streams held open at the end")
      ->type_name("N")
      ->transform(t2::IntIn(1, 100'000));
  command_line.add_option("--step", config.step, "streams added between measurements")
      ->type_name("N")
      ->transform(t2::IntIn(1, 100'000));
  command_line
      .add_option("--per-connection", config.per_connection, "streams per client connection")
      ->type_name("N")
      ->transform(t2::IntIn(1, 10'000));
  if (auto exit_code = command_line.Parse(argc, argv)) return *exit_code;
  return Run(config);
}
