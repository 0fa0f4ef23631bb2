// Open-loop load through Dispatcher.GenerateStream: at each offered rate, requests arrive
// with exponential gaps (a Poisson process) for --seconds, whatever is still outstanding, and
// the table says what came back: completions and tokens per second, end-to-end latency and
// time to first token of the OK calls, and the share of RESOURCE_EXHAUSTED (a full worker
// queue) and of other errors. Every call of a rate ends (answer, error or deadline) before the
// next rate starts.
//
//   build/bench/load_bench [--server] DISPATCHER_ADDR [--rates 0.5,1,2,4,8] [--seconds 30]
//                          [--max-new-tokens 64] [--deadline-seconds 120]
//                          [--adaptation none|prompt] [--seed N]
//
// bench/run_load_bench.sh starts a stack and runs it. Calls use gRPC's callback API: the
// sender only sleeps until the next arrival and starts a call; gRPC's threads run the rest.
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench_common.h"
#include "t2/common/command_line.h"
#include "t2/rpc/security.h"
#include "t2/v1/dispatcher.grpc.pb.h"

namespace {

using t2::bench::Clock;
using t2::bench::Percentile;
using t2::v1::GenerateRequest;
using t2::v1::GenerateStreamResponse;

struct Config {
  std::string server;
  std::vector<double> rates;
  double seconds = 30;
  int max_new_tokens = 64;
  double deadline_seconds = 120;
  bool prompt_adaptation = false;
  uint64_t seed = 1;
};

// Fills `c` from the command line. nullopt: go on; otherwise the exit code (usage or error
// printed).
std::optional<int> ParseConfig(int argc, char** argv, Config& c) {
  t2::CommandLine command_line(
      "load_bench",
      "Open-loop load through Dispatcher.GenerateStream: at each offered "
      "rate, Poisson arrivals for --seconds, and a table of what came back.");
  std::string dispatcher, rates = "0.5,1,2,4,8", adaptation = "none";
  int64_t seed = static_cast<int64_t>(c.seed);
  command_line.add_option("dispatcher", dispatcher, "the dispatcher's address (or --server)")
      ->type_name("HOST:PORT");
  CLI::Option* server_flag =
      command_line.add_option("--server", c.server, "the dispatcher's address")
          ->type_name("HOST:PORT");
  command_line.add_option("--rates", rates, "offered request rates in req/s, run in this order")
      ->type_name("R,R,...");
  command_line
      .add_option("--seconds", c.seconds, "how long requests arrive at each rate (above 0)")
      ->type_name("S")
      ->transform(t2::NumberIn(0, 86400));
  command_line.add_option("--max-new-tokens", c.max_new_tokens, "answer budget per request")
      ->type_name("N")
      ->transform(t2::IntIn(1, 4096));
  command_line.add_option("--deadline-seconds", c.deadline_seconds, "per-call deadline (above 0)")
      ->type_name("S")
      ->transform(t2::NumberIn(0, 86400));
  command_line
      .add_option("--adaptation", adaptation,
                  "none (base model) | prompt (prompt-based first pass)")
      ->transform(t2::OneOf({"none", "prompt"}));
  command_line.add_option("--seed", seed, "seed of the arrival times")
      ->type_name("N")
      ->transform(
          t2::IntIn(std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())
              .description(""));
  command_line.footer("bench/run_load_bench.sh starts a stack and runs it.");
  if (auto exit_code = command_line.Parse(argc, argv)) return exit_code;
  auto usage_error = [](const std::string& message) {
    std::fprintf(stderr, "load_bench: %s\n", message.c_str());
    return 2;
  };

  if (server_flag->count() > 0 && !dispatcher.empty()) {
    return usage_error(absl::StrCat("unexpected argument '", dispatcher, "'"));
  }
  if (server_flag->count() == 0) c.server = dispatcher;
  if (c.server.empty()) return usage_error("the dispatcher address (--server) is required");
  for (absl::string_view part : absl::StrSplit(rates, ',')) {
    std::string text(part);
    char* end = nullptr;
    double rate = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !(rate > 0 && rate <= 1e4)) {
      return usage_error(absl::StrCat(
          "--rates takes numbers in (0, 10000] separated by commas, got '", text, "'"));
    }
    c.rates.push_back(rate);
  }
  if (c.seconds == 0) return usage_error("--seconds must be in (0, 86400]");
  if (c.deadline_seconds == 0) return usage_error("--deadline-seconds must be in (0, 86400]");
  c.prompt_adaptation = adaptation == "prompt";
  c.seed = static_cast<uint64_t>(seed);
  return std::nullopt;
}

GenerateRequest MakeRequest(const Config& config, size_t index) {
  GenerateRequest r;
  auto* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content(t2::bench::kQuestions[index % t2::bench::kQuestions.size()]);
  r.set_max_new_tokens(config.max_new_tokens);
  r.mutable_sampling()->set_temperature(0);  // greedy
  if (config.prompt_adaptation) {
    r.mutable_adaptation()->mutable_prompt();
  } else {
    r.mutable_adaptation()->mutable_none();
  }
  return r;
}

// Counts the calls of a run that have ended, so that the sender can wait for the last one.
class Completions {
 public:
  void Add() {
    std::lock_guard lock(mu_);
    ++done_;
    cv_.notify_all();
  }
  void WaitFor(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t done_ = 0;
};

// What one call saw. Times are from the call's start.
struct Outcome {
  grpc::Status status;
  double ttft_s = -1;     // first message with text; -1: none came
  double latency_s = 0;   // until the final status
  int64_t tokens = 0;     // usage.completion_tokens of the last message
  Clock::time_point end;  // when the final status came
};

// One GenerateStream call. Whoever starts it owns it and must keep it until `completions`
// has counted it; gRPC's threads run the callbacks, which write only this object and then
// count it, so outcome() may be read once the count includes it.
class StreamCall final : public grpc::ClientReadReactor<GenerateStreamResponse> {
 public:
  explicit StreamCall(Completions& completions) : completions_(completions) {}

  void Start(t2::v1::Dispatcher::Stub& stub, GenerateRequest request, double deadline_seconds) {
    request_ = std::move(request);
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(
                              std::chrono::duration<double>(deadline_seconds)));
    start_ = Clock::now();
    stub.async()->GenerateStream(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  const Outcome& outcome() const { return outcome_; }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    if (outcome_.ttft_s < 0 && !response_.text().empty()) outcome_.ttft_s = Seconds(Clock::now());
    if (response_.has_usage()) outcome_.tokens = response_.usage().completion_tokens();
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    outcome_.end = Clock::now();
    outcome_.latency_s = Seconds(outcome_.end);
    outcome_.status = status;
    completions_.Add();  // last: the owner may free this call from here on
  }

 private:
  double Seconds(Clock::time_point t) const {
    return std::chrono::duration<double>(t - start_).count();
  }

  Completions& completions_;
  grpc::ClientContext context_;
  GenerateRequest request_;
  GenerateStreamResponse response_;
  Clock::time_point start_;
  Outcome outcome_;
};

// Sends requests at `rate` for config.seconds with exponential gaps (the first at once),
// waits for every call to end and returns what each saw. `next_question` varies the prompts
// across the whole run.
std::vector<Outcome> RunRate(t2::v1::Dispatcher::Stub& stub, const Config& config, double rate,
                             std::mt19937_64& rng, size_t& next_question,
                             Clock::time_point& first_send) {
  std::exponential_distribution<double> gap(rate);
  Completions completions;
  std::vector<std::unique_ptr<StreamCall>> calls;  // freed after `completions` counted them all
  first_send = Clock::now();
  const Clock::time_point end = first_send + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(config.seconds));
  for (Clock::time_point at = first_send; at < end;
       at += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)))) {
    std::this_thread::sleep_until(at);
    calls.push_back(std::make_unique<StreamCall>(completions));
    calls.back()->Start(stub, MakeRequest(config, next_question++), config.deadline_seconds);
  }
  completions.WaitFor(calls.size());
  std::vector<Outcome> out;
  for (const auto& call : calls) out.push_back(call->outcome());
  return out;
}

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// Prints one table row; for codes other than OK and RESOURCE_EXHAUSTED, appends
// "CODE ×n at R req/s" to `other_codes` and prints the first message of each to stderr.
void PrintRow(double rate, double window_s, const std::vector<Outcome>& calls, Clock::time_point first_send,
              std::vector<std::string>& other_codes) {
  std::vector<double> latency, ttft;
  int64_t tokens = 0;
  int exhausted = 0, other = 0;
  std::map<grpc::StatusCode, int> others;
  Clock::time_point last_end = first_send;
  for (const Outcome& c : calls) {
    last_end = std::max(last_end, c.end);
    const grpc::StatusCode code = c.status.error_code();
    if (c.status.ok()) {
      latency.push_back(c.latency_s);
      if (c.ttft_s >= 0) ttft.push_back(c.ttft_s);
      tokens += c.tokens;
    } else if (code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
    } else {
      ++other;
      if (others[code]++ == 0) {
        std::fprintf(stderr, "load_bench: first %s at %g req/s: %s\n", CodeName(code).c_str(), rate,
                     c.status.error_message().c_str());
      }
    }
  }
  for (const auto& [code, count] : others) {
    other_codes.push_back(absl::StrFormat("%s ×%d at %g req/s", CodeName(code), count, rate));
  }
  // Achieved rates count from the first send to the last completion.
  const double span = std::chrono::duration<double>(last_end - first_send).count();
  const double per_second = span > 0 ? 1 / span : 0;
  const double share = 100.0 / static_cast<double>(std::max<size_t>(1, calls.size()));
  auto seconds = [](const std::vector<double>& v, double p) {
    return v.empty() ? std::string("-") : absl::StrFormat("%.2f", Percentile(v, p));
  };
  // Poisson arrivals over a short window stray from the offered rate: sent/s is what came.
  std::printf("| %13.2f | %4zu | %6.2f | %8.2f | %9.1f | %7s | %7s | %8s | %8s | %17.1f%% | %11.1f%% |\n",
              rate, calls.size(), static_cast<double>(calls.size()) / window_s, latency.size() * per_second,
              tokens * per_second,
              seconds(latency, 0.5).c_str(), seconds(latency, 0.99).c_str(),
              seconds(ttft, 0.5).c_str(), seconds(ttft, 0.99).c_str(), exhausted * share,
              other * share);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  if (auto exit_code = ParseConfig(argc, argv, config)) return *exit_code;
  auto stub = t2::v1::Dispatcher::NewStub(
      grpc::CreateChannel(config.server, t2::rpc::LoopbackChannelCredentials()));

  // One call first, not counted: it connects, and shows a stack that cannot answer at all.
  std::mt19937_64 rng(config.seed);
  size_t next_question = 0;
  {
    Completions completions;
    StreamCall warmup(completions);
    warmup.Start(*stub, MakeRequest(config, next_question++), config.deadline_seconds);
    completions.WaitFor(1);
    if (!warmup.outcome().status.ok()) {
      std::fprintf(stderr, "load_bench: warm-up call to %s failed: %s: %s\n", config.server.c_str(),
                   CodeName(warmup.outcome().status.error_code()).c_str(),
                   warmup.outcome().status.error_message().c_str());
      return 1;
    }
  }

  std::printf(
      "\nOpen-loop load on %s: Poisson arrivals for %g s per rate, greedy chat, up to %d new "
      "tokens, adaptation %s, deadline %g s. Latencies in seconds, of OK calls.\n\n",
      config.server.c_str(), config.seconds, config.max_new_tokens,
      config.prompt_adaptation ? "prompt" : "none", config.deadline_seconds);
  std::printf(
      "| offered req/s | sent | sent/s | ok req/s | out tok/s | e2e p50 | e2e p99 | TTFT p50 | TTFT p99 | "
      "RESOURCE_EXHAUSTED | other errors |\n");
  std::printf(
      "|---------------|------|--------|----------|-----------|---------|---------|----------|----------|"
      "--------------------|--------------|\n");
  std::fflush(stdout);
  std::vector<std::string> other_codes;
  for (double rate : config.rates) {
    std::fprintf(stderr, "load_bench: %g req/s for %g s\n", rate, config.seconds);
    Clock::time_point first_send;
    std::vector<Outcome> calls = RunRate(*stub, config, rate, rng, next_question, first_send);
    PrintRow(rate, config.seconds, calls, first_send, other_codes);
  }
  std::printf("\nother error codes: %s\n",
              other_codes.empty() ? "none" : absl::StrJoin(other_codes, ", ").c_str());
  return 0;
}
