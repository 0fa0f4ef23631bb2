// The Dispatcher gRPC service: validation, the first pass, the second pass on a worker, and
// few-shot adaptation, on gRPC's callback API. What blocks (the first pass's worker and
// registry calls, a CEM search) runs on a bounded handler executor, never on gRPC's threads;
// a generation holds no thread once its first pass is done (generate_calls.h). The client's
// cancellation reaches every downstream call through the CallScope's stop token. No exception
// escapes a handler.
#pragma once

#include "absl/time/time.h"
#include "adapt_runner.h"
#include "dispatcher_metrics.h"
#include "expert_resolver.h"
#include "first_pass.h"
#include "t2/common/bounded_executor.h"
#include "t2/v1/dispatcher.grpc.pb.h"
#include "worker_pool.h"

namespace t2::dispatcher {

class DispatcherService final : public t2::v1::Dispatcher::CallbackService {
 public:
  struct Options {
    FirstPassRunner::Options first_pass;
    AdaptOptions adapt;
    DispatcherMetrics* metrics = nullptr;  // records every call when set; outlives the service
    // Threads for the blocking parts of calls; beyond them and the queue, RESOURCE_EXHAUSTED.
    BoundedExecutor::Options handlers = {.max_threads = 64, .max_queue = 4096};
  };

  // `pool` and `resolver` must outlive the service.
  DispatcherService(WorkerPool& pool, ExpertResolver& resolver, Options options);

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const t2::v1::GenerateRequest* request,
                                     t2::v1::GenerateResponse* response) override;
  grpc::ServerWriteReactor<t2::v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* context, const t2::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const t2::v1::ClassifyRequest* request,
                                     t2::v1::ClassifyResponse* response) override;
  grpc::ServerUnaryReactor* Adapt(grpc::CallbackServerContext* context,
                                  const t2::v1::AdaptRequest* request,
                                  t2::v1::AdaptResponse* response) override;

 private:
  absl::Status DoClassify(const CallScope& scope, const t2::v1::ClassifyRequest& request,
                          t2::v1::ClassifyResponse& response, DispatcherMetrics::Call& call);
  absl::Status DoAdapt(const CallScope& scope, const t2::v1::AdaptRequest& request,
                       t2::v1::AdaptResponse& response);
  // Runs `body` on the executor as `method`, recording the call when metrics are on.
  template <typename Body>
  grpc::ServerUnaryReactor* Offload(grpc::CallbackServerContext* context, std::string method,
                                    DispatcherMetrics::Call call, Body body);

  WorkerPool& pool_;
  DispatcherMetrics* metrics_;
  FirstPassRunner first_pass_;
  AdaptRunner adapt_;
  // Last: destroyed first, after the server has finished every call, letting queued work end.
  BoundedExecutor executor_;
};

// What the first pass tells the call's metrics.
void NoteFirstPass(const FirstPassResult& first, DispatcherMetrics::Call& call);

// The worker request of a second pass: the client's input and generation fields, unchanged
// (the worker validates them), with the first pass's adapter.
t2::v1::WorkerGenerateRequest SecondPassRequest(const t2::v1::GenerateRequest& request,
                                                const t2::v1::AdapterSpec& adapter);

}  // namespace t2::dispatcher
