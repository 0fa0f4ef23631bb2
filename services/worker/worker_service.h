// The t2.v1.Worker gRPC handlers over the engine's Generator, on gRPC's callback API:
// validation before queueing, streaming, cancellation and deadlines handed to the scheduler,
// draining on shutdown. What blocks (tokenizing, an expert's fetch from the registry, a Score
// waiting for its batch) runs on a bounded handler executor, never on gRPC's threads; a
// Generate holds no thread once its request is queued: the scheduler's callbacks write its
// stream (WorkerService::GenerateCall), and the client's cancellation (OnCancel) cancels its
// request.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <optional>
#include <stop_token>

#include "expert_cache.h"
#include "t2/common/bounded_executor.h"
#include "t2/engine/generator.h"
#include "t2/tokenizer/chat_template.h"
#include "t2/v1/worker.grpc.pb.h"
#include "worker_metrics.h"

namespace t2::worker {

class WorkerService final : public t2::v1::Worker::CallbackService {
 public:
  // Until Attach, every call gets UNAVAILABLE ("loading"): the server listens while the
  // model loads, so that health checks can tell loading from dead. `handlers` bounds the
  // threads of the blocking parts (a Score holds one until it is scored).
  explicit WorkerService(BoundedExecutor::Options handlers = {.max_threads = 64, .max_queue = 4096})
      : executor_(handlers) {}
  // `metrics` (may be null) records every Generate call; it must outlive the service.
  void Attach(engine::Generator& generator, ExpertCache& experts, std::string model_name,
              WorkerMetrics* metrics = nullptr);

  grpc::ServerWriteReactor<t2::v1::WorkerGenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const t2::v1::WorkerGenerateRequest* request) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const t2::v1::ScoreRequest* request,
                                  t2::v1::ScoreResponse* response) override;
  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* context,
                                 const t2::v1::WorkerInfoRequest* request,
                                 t2::v1::WorkerInfo* response) override;

  // New calls get UNAVAILABLE from now on; calls already running continue.
  void StartDraining() { draining_ = true; }

 private:
  // Chat or prompt -> token ids (chat through the model's template, assistant header added).
  absl::StatusOr<std::vector<int32_t>> Tokenize(const t2::v1::Chat* chat, const std::string* prompt) const;
  absl::StatusOr<engine::GenerationRequest> ToEngineRequest(const t2::v1::WorkerGenerateRequest& request) const;

  grpc::Status Unready() const;
  grpc::Status RunScore(grpc::CallbackServerContext& context, const t2::v1::ScoreRequest& request,
                        t2::v1::ScoreResponse& response, const std::stop_token& stop);
  grpc::Status RunInfo(t2::v1::WorkerInfo* info);

  class GenerateCall;  // one Generate call (generate_call.cc)

  engine::Generator* generator_ = nullptr;  // set once by Attach, before ready_
  ExpertCache* experts_ = nullptr;
  WorkerMetrics* metrics_ = nullptr;
  std::string model_name_;
  std::atomic<bool> ready_{false};
  std::optional<tokenizer::ChatTemplate> chat_template_;  // unset: the model has none
  std::atomic<bool> draining_{false};
  // Last: destroyed first, after the server has finished every call, letting queued work end.
  BoundedExecutor executor_;
};

}  // namespace t2::worker
