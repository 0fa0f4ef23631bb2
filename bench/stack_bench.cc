// Services overhead and the first pass's cost, against a running stack (`t2 up`).
//
//   build/bench/stack_bench DISPATCHER_ADDR [requests] [max_new_tokens]
//                           [SEQUENTIAL_DISPATCHER_ADDR EXPERT,EXPERT...]
//
// 1. The same greedy chat requests, one at a time, (a) through the engine in-process and
//    (b) through Dispatcher.GenerateStream with no adaptation: time to first token and time
//    per token, p50 and p99, and the difference (what gRPC, the dispatcher and the worker's
//    queue add).
// 2. The first pass as a share of the second pass for each classification mode, on answers
//    of max_new_tokens tokens (the paper measured 13-47% with generated classification).
// 3. With a second dispatcher started with --cem-sequential (same registry and worker) and
//    the names of published experts: Adapt's wall time evaluating each CEM population in one
//    batch of concurrent calls against one candidate at a time.
// bench/run_stack_bench.sh starts all of it. Run on a quiet machine; (a) and (b) alternate
// request by request.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench_common.h"
#include "t2/common/env.h"
#include "t2/engine/generator.h"
#include "t2/rpc/security.h"
#include "t2/tokenizer/chat_template.h"
#include "t2/v1/dispatcher.grpc.pb.h"

namespace {

using t2::bench::Clock;
using t2::bench::kQuestions;
using t2::bench::Ms;
using t2::bench::Percentile;

struct Timing {
  std::vector<double> ttft_ms, per_token_ms;
};

void Print(const char* label, const Timing& t) {
  std::printf("| %-28s | %8.1f | %8.1f | %8.2f | %8.2f |\n", label, Percentile(t.ttft_ms, 0.5),
              Percentile(t.ttft_ms, 0.99), Percentile(t.per_token_ms, 0.5), Percentile(t.per_token_ms, 0.99));
}

// The engine in the bench's own process, configured as the worker is (bench/run_stack_bench.sh):
// batch 8, its default 64 MiB prefix cache, the worker's model and device (T2_BENCH_MODEL,
// T2_BENCH_DEVICE) and T2_ENGINE_THREADS torch threads when the script pins the worker's.
std::unique_ptr<t2::engine::Generator> InProcessEngine() {
  auto env = [](const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr && *v != '\0' ? v : fallback);
  };
  auto model = t2::ResolveModelPath(env("T2_BENCH_MODEL", "default"));
  if (!model.ok()) {
    std::fprintf(stderr, "engine: %s\n", model.status().ToString().c_str());
    return nullptr;
  }
  auto device = t2::model::DeviceSpec::Parse(env("T2_BENCH_DEVICE", "cpu"));
  if (!device.ok()) {
    std::fprintf(stderr, "T2_BENCH_DEVICE: %s\n", std::string(device.status().message()).c_str());
    return nullptr;
  }
  const char* threads = std::getenv("T2_ENGINE_THREADS");
  auto g =
      t2::engine::Generator::Create({.model = *model,
                                     .device = *device,
                                     .cpu_threads = threads != nullptr ? std::atoi(threads) : 0,
                                     .max_batch_size = 8,
                                     .prefix_cache_bytes = int64_t{64} << 20});
  if (!g.ok()) {
    std::fprintf(stderr, "engine: %s\n", g.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*g);
}

// One greedy chat request through the engine in-process; adds its timing to `out`.
void InProcess(t2::engine::Generator& g, const t2::tokenizer::ChatTemplate& tmpl, const std::string& question,
               int max_new, Timing& out) {
  std::vector<t2::tokenizer::ChatMessage> messages = {{"user", question}};
  t2::engine::GenerationRequest r;
  r.prompt_ids = g.tokenizer().Encode(*tmpl.Apply(messages, true), false);
  r.max_new_tokens = max_new;
  Clock::time_point start = Clock::now(), first{}, last{};
  int tokens = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  t2::engine::StreamCallbacks cb;
  cb.on_tokens = [&](std::string_view, std::span<const int32_t> ids, std::span<const float>) {
    if (ids.empty()) return;
    auto now = Clock::now();
    if (tokens == 0) first = now;
    last = now;
    tokens += static_cast<int>(ids.size());
  };
  cb.on_done = [&](absl::StatusOr<t2::engine::GenerationResult>) {
    std::lock_guard<std::mutex> l(mu);
    done = true;
    cv.notify_all();
  };
  if (!g.Submit(r, cb).ok()) return;
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  out.ttft_ms.push_back(Ms(first - start));
  if (tokens > 1) out.per_token_ms.push_back(Ms(last - first) / (tokens - 1));
}

// Requests whose answers run long, so that the second pass is max_new_tokens tokens (or close)
// when the first pass is set against it; one for each category.
const std::vector<std::string> kLongAnswers = {
    "Write a Python class for a bank account with deposit, withdraw and a transaction history, "
    "with docstrings.",
    "Explain step by step how to solve the equation 3x + 7 = 2x - 5, and check the answer.",
    "Three friends each own a different pet. Reason through who owns which, explaining every step "
    "in detail.",
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Write a JavaScript function that validates an email address, and explain each part of it.",
    "Explain in detail how compound interest works, with a worked example over five years.",
    "Describe in detail why the seasons change on Earth, and correct two common misconceptions.",
    "Write a detailed travel guide for a weekend in Kyoto."};

t2::v1::GenerateRequest Request(const std::string& question, int max_new) {
  t2::v1::GenerateRequest r;
  auto* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content(question);
  r.set_max_new_tokens(max_new);
  r.mutable_sampling()->set_temperature(0);  // greedy, as the engine in-process
  return r;
}

t2::v1::GenerateRequest Request(int i, int max_new) { return Request(kQuestions[i % kQuestions.size()], max_new); }

// Streams one request; returns (ttft, per-token, first pass ms, total ms).
struct Measured {
  double ttft = 0, per_token = 0, first_pass = 0, total = 0;
  int64_t tokens = 0;  // of the answer
  bool ok = false;
};

Measured Through(t2::v1::Dispatcher::Stub& stub, const t2::v1::GenerateRequest& request) {
  Measured m;
  grpc::ClientContext context;
  Clock::time_point start = Clock::now(), first{}, last{};
  auto reader = stub.GenerateStream(&context, request);
  t2::v1::GenerateStreamResponse message;
  int64_t tokens = 0;
  while (reader->Read(&message)) {
    if (message.has_first_pass()) m.first_pass = message.first_pass().duration_ms();
    if (!message.text().empty()) {
      auto now = Clock::now();
      if (first == Clock::time_point{}) first = now;
      last = now;
    }
    if (message.has_usage()) tokens = message.usage().completion_tokens();
  }
  m.tokens = tokens;
  m.ok = reader->Finish().ok();
  m.total = Ms(Clock::now() - start);
  m.ttft = Ms(first - start);
  if (tokens > 1) m.per_token = Ms(last - first) / static_cast<double>(tokens - 1);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: stack_bench DISPATCHER_ADDR [requests] [max_new_tokens]\n");
    return 2;
  }
  const std::string address = argv[1];
  const int requests = argc > 2 ? std::atoi(argv[2]) : 16;
  const int max_new = argc > 3 ? std::atoi(argv[3]) : 128;
  const std::string sequential = argc > 5 ? argv[4] : "";
  const std::string experts = argc > 5 ? argv[5] : "";
  auto channel = grpc::CreateChannel(address, t2::rpc::LoopbackChannelCredentials());
  auto stub = t2::v1::Dispatcher::NewStub(channel);

  // The two paths alternate request by request, so that whatever else the machine does at
  // the time weighs on both alike; each has answered one request before timing starts.
  std::unique_ptr<t2::engine::Generator> g = InProcessEngine();
  if (g == nullptr) return 1;
  auto tmpl = t2::tokenizer::ChatTemplate::FromJinja(g->tokenizer().chat_template());
  if (!tmpl.ok()) return 1;
  Timing engine, stack, warm_up;
  InProcess(*g, *tmpl, kQuestions[0], 4, warm_up);
  Through(*stub, Request(0, 4));
  for (int i = 0; i < requests; ++i) {
    InProcess(*g, *tmpl, kQuestions[i % kQuestions.size()], max_new, engine);
    auto m = Through(*stub, Request(i, max_new));
    if (!m.ok) continue;
    stack.ttft_ms.push_back(m.ttft);
    stack.per_token_ms.push_back(m.per_token);
  }
  g.reset();  // frees its memory before the rest
  std::printf("\n%d greedy chat requests, one at a time, up to %d new tokens\n\n", requests, max_new);
  std::printf("| %-28s | %8s | %8s | %8s | %8s |\n", "path", "TTFT p50", "TTFT p99", "tok p50", "tok p99");
  std::printf("|------------------------------|----------|----------|----------|----------|\n");
  Print("engine in-process (ms)", engine);
  Print("dispatcher -> worker (ms)", stack);
  std::printf("\nservices add %.2f ms to TTFT and %.3f ms per token at p50\n",
              Percentile(stack.ttft_ms, 0.5) - Percentile(engine.ttft_ms, 0.5),
              Percentile(stack.per_token_ms, 0.5) - Percentile(engine.per_token_ms, 0.5));

  std::printf("\nFirst pass as a share of the second pass (answers of up to %d tokens)\n\n", max_new);
  std::printf("| %-24s | %12s | %13s | %13s | %7s |\n", "strategy", "first ms p50", "second ms p50",
              "answer tok p50", "share");
  std::printf("|--------------------------|--------------|---------------|----------------|---------|\n");
  for (auto mode : {t2::v1::CLASSIFY_MODE_LABEL_SCORE, t2::v1::CLASSIFY_MODE_GENERATE}) {
    std::vector<double> first, second, answer_tokens;
    for (int i = 0; i < std::max(4, requests / 2); ++i) {
      auto r = Request(kLongAnswers[i % kLongAnswers.size()], max_new);
      r.mutable_adaptation()->mutable_prompt()->set_mode(mode);
      auto m = Through(*stub, r);
      if (!m.ok) continue;
      first.push_back(m.first_pass);
      second.push_back(m.total - m.first_pass);
      answer_tokens.push_back(static_cast<double>(m.tokens));
    }
    double f = Percentile(first, 0.5), s = Percentile(second, 0.5);
    std::printf("| %-24s | %12.1f | %13.1f | %14.0f | %6.1f%% |\n",
                mode == t2::v1::CLASSIFY_MODE_LABEL_SCORE ? "prompt, label scoring" : "prompt, generate \\boxed",
                f, s, Percentile(answer_tokens, 0.5), s > 0 ? 100.0 * f / s : 0.0);
  }
  if (!sequential.empty()) {
    std::printf("\nFew-shot Adapt (CEM): 4 examples, population 8, 2 generations, 16-token answers\n\n");
    std::printf("| %-34s | %9s | %11s | %8s |\n", "population evaluation", "wall s", "evaluations", "speedup");
    std::printf("|------------------------------------|-----------|-------------|----------|\n");
    double batched_s = 0;
    for (const auto& [label, addr] : {std::pair{"batched (whole population at once)", address},
                                      std::pair{"one candidate at a time", sequential}}) {
      auto adapt_stub = t2::v1::Dispatcher::NewStub(
          grpc::CreateChannel(addr, t2::rpc::LoopbackChannelCredentials()));
      t2::v1::AdaptRequest request;
      request.set_task(std::string("bench-") + (addr == address ? "batched" : "sequential"));
      for (auto [q, a] : {std::pair{"What is 2 + 3?", "5"}, std::pair{"What is 4 + 4?", "8"},
                          std::pair{"What is 10 - 7?", "3"}, std::pair{"What is 3 times 3?", "9"}}) {
        auto* e = request.add_examples();
        e->set_question(q);
        e->set_answer(a);
      }
      request.set_verifier(t2::v1::VERIFIER_KIND_NUMERIC);
      for (size_t start = 0; start < experts.size();) {
        size_t comma = experts.find(',', start);
        if (comma == std::string::npos) comma = experts.size();
        request.add_experts(experts.substr(start, comma - start));
        start = comma + 1;
      }
      request.set_population(8);
      request.set_generations(2);
      request.set_max_new_tokens(16);
      grpc::ClientContext context;
      t2::v1::AdaptResponse response;
      auto start = Clock::now();
      grpc::Status status = adapt_stub->Adapt(&context, request, &response);
      double seconds = Ms(Clock::now() - start) / 1000;
      if (!status.ok()) {
        std::printf("| %-34s | failed: %s\n", label, status.error_message().c_str());
        continue;
      }
      if (addr == address) batched_s = seconds;
      std::printf("| %-34s | %9.1f | %11d | %7.2fx |\n", label, seconds, response.evaluations(),
                  batched_s > 0 ? seconds / batched_s : 0.0);
    }
  }
  return 0;
}
