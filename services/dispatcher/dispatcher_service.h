// The Dispatcher gRPC service: validation, the first pass, the second pass on a worker, and
// few-shot adaptation. gRPC's synchronous API: each call is a short sequence of blocking
// steps (resolve, classify, stream), a thread per in-flight call is what a front door with
// hundreds of concurrent streams can afford, and the waits inside poll the client's call so
// that a cancelled client cancels its worker call. No exception escapes a handler.
#pragma once

#include "absl/time/time.h"
#include "adapt_runner.h"
#include "dispatcher_metrics.h"
#include "expert_resolver.h"
#include "first_pass.h"
#include "t2/v1/dispatcher.grpc.pb.h"
#include "worker_pool.h"

namespace t2::dispatcher {

class DispatcherService final : public t2::v1::Dispatcher::Service {
 public:
  struct Options {
    FirstPassRunner::Options first_pass;
    AdaptOptions adapt;
    DispatcherMetrics* metrics = nullptr;  // records every call when set; outlives the service
  };

  // `pool` and `resolver` must outlive the service.
  DispatcherService(WorkerPool& pool, ExpertResolver& resolver, Options options);

  grpc::Status Generate(grpc::ServerContext* context, const t2::v1::GenerateRequest* request,
                        t2::v1::GenerateResponse* response) override;
  grpc::Status GenerateStream(grpc::ServerContext* context, const t2::v1::GenerateRequest* request,
                              grpc::ServerWriter<t2::v1::GenerateStreamResponse>* writer) override;
  grpc::Status Classify(grpc::ServerContext* context, const t2::v1::ClassifyRequest* request,
                        t2::v1::ClassifyResponse* response) override;
  grpc::Status Adapt(grpc::ServerContext* context, const t2::v1::AdaptRequest* request,
                     t2::v1::AdaptResponse* response) override;

 private:
  absl::Status DoGenerate(const CallScope& scope, const t2::v1::GenerateRequest& request,
                          t2::v1::GenerateResponse& response, DispatcherMetrics::Call& call);
  absl::Status DoGenerateStream(const CallScope& scope, const t2::v1::GenerateRequest& request,
                                grpc::ServerWriter<t2::v1::GenerateStreamResponse>& writer,
                                DispatcherMetrics::Call& call);
  absl::Status DoClassify(const CallScope& scope, const t2::v1::ClassifyRequest& request,
                          t2::v1::ClassifyResponse& response, DispatcherMetrics::Call& call);
  // Records a finished call (when metrics are on) and passes its status through.
  grpc::Status Finish(const DispatcherMetrics::Call& call, absl::Time start, grpc::Status status);
  absl::Status DoAdapt(const CallScope& scope, const t2::v1::AdaptRequest& request,
                       t2::v1::AdaptResponse& response);

  WorkerPool& pool_;
  DispatcherMetrics* metrics_;
  FirstPassRunner first_pass_;
  AdaptRunner adapt_;
};

// The worker request of a second pass: the client's input and generation fields, unchanged
// (the worker validates them), with the first pass's adapter.
t2::v1::WorkerGenerateRequest SecondPassRequest(const t2::v1::GenerateRequest& request,
                                                const t2::v1::AdapterSpec& adapter);

}  // namespace t2::dispatcher
