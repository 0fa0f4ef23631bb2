// What the worker's metrics cost per token, per request and per scrape (issue 13: "metrics
// cost nothing measurable"). Times the instrumented calls themselves, in this process, with
// every adapter label a worker may hold (64) already present, and prints a table.
//   build/bench/metrics_bench [TOKENS]
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "worker_metrics.h"

namespace {

using Clock = std::chrono::steady_clock;

double NanosPer(Clock::time_point start, int64_t n) {
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
         static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t tokens = argc > 1 ? std::atoll(argv[1]) : 2'000'000;
  prometheus::Registry registry;
  t2::worker::WorkerMetrics metrics(registry);
  // A worker that has served 64 adapters: each has its series in every per-adapter family.
  for (int a = 0; a < 64; ++a) {
    auto call = metrics.StartCall();
    call->SetAdapter(absl::StrCat("expert-", a, "@1"));
    call->Started(0.001);
    for (int t = 0; t < 4; ++t) call->Tokens(1);
    call->Finished(grpc::StatusCode::OK, "length", 100, 4);
  }

  // Per token: what the scheduler thread does for each token of a request (Tokens(1)).
  auto call = metrics.StartCall();
  call->SetAdapter("expert-7@1");
  call->Tokens(1);
  auto start = Clock::now();
  for (int64_t i = 0; i < tokens; ++i) call->Tokens(1);
  const double per_token = NanosPer(start, tokens);

  // Per request: the rest of a request's recording (start, adapter, queue time, end).
  const int64_t requests = tokens / 20;
  start = Clock::now();
  for (int64_t i = 0; i < requests; ++i) {
    auto c = metrics.StartCall();
    c->SetAdapter("expert-7@1");
    c->Started(0.001);
    c->Finished(grpc::StatusCode::OK, "eos", 100, 50);
  }
  const double per_request = NanosPer(start, requests);

  // Per scrape: collecting and serialising what the registry holds.
  const int scrapes = 200;
  size_t bytes = 0;
  start = Clock::now();
  for (int i = 0; i < scrapes; ++i)
    bytes = prometheus::TextSerializer().Serialize(registry.Collect()).size();
  const double per_scrape = NanosPer(start, scrapes);

  std::cout << "| what | cost |\n|---|---|\n"
            << absl::StrFormat("| per token (TTFT or inter-token histogram) | %.0f ns |\n",
                               per_token)
            << absl::StrFormat("| per request (start, adapter, queue time, end) | %.2f us |\n",
                               per_request / 1e3)
            << absl::StrFormat("| per scrape, 64 adapters (%zu bytes of text) | %.2f ms |\n", bytes,
                               per_scrape / 1e6);
  return 0;
}
