// The t2.v1.Worker gRPC handlers over the engine's Generator: validation before queueing,
// streaming, cancellation and deadlines handed to the scheduler, draining on shutdown.
#pragma once

#include <atomic>
#include <memory>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "expert_cache.h"
#include "t2/engine/generator.h"
#include "t2/tokenizer/chat_template.h"
#include "t2/v1/worker.grpc.pb.h"
#include "worker_metrics.h"

namespace t2::worker {

class WorkerService final : public t2::v1::Worker::Service {
 public:
  // Until Attach, every call gets UNAVAILABLE ("loading"): the server listens while the
  // model loads, so that health checks can tell loading from dead.
  WorkerService() = default;
  // `metrics` (may be null) records every Generate call; it must outlive the service.
  void Attach(engine::Generator& generator, ExpertCache& experts, std::string model_name,
              WorkerMetrics* metrics = nullptr);

  grpc::Status Generate(grpc::ServerContext* context, const t2::v1::WorkerGenerateRequest* request,
                        grpc::ServerWriter<t2::v1::WorkerGenerateResponse>* writer) override;
  grpc::Status Score(grpc::ServerContext* context, const t2::v1::ScoreRequest* request,
                     t2::v1::ScoreResponse* response) override;
  grpc::Status Info(grpc::ServerContext* context, const t2::v1::WorkerInfoRequest* request,
                    t2::v1::WorkerInfo* response) override;

  // New calls get UNAVAILABLE from now on; calls already running continue.
  void StartDraining() { draining_ = true; }

 private:
  // Chat or prompt -> token ids (chat through the model's template, assistant header added).
  absl::StatusOr<std::vector<int32_t>> Tokenize(const t2::v1::Chat* chat, const std::string* prompt) const;
  absl::StatusOr<engine::GenerationRequest> ToEngineRequest(const t2::v1::WorkerGenerateRequest& request) const;

  grpc::Status Unready() const;
  // Generate's work; `call` (null without metrics) learns the adapter and the tokens.
  grpc::Status RunGenerate(grpc::ServerContext* context, const t2::v1::WorkerGenerateRequest* request,
                           grpc::ServerWriter<t2::v1::WorkerGenerateResponse>* writer,
                           const std::shared_ptr<WorkerMetrics::Call>& call, std::string& finish_reason,
                           t2::v1::Usage& usage);
  grpc::Status RunScore(grpc::ServerContext* context, const t2::v1::ScoreRequest* request,
                        t2::v1::ScoreResponse* response);
  grpc::Status RunInfo(t2::v1::WorkerInfo* info);

  engine::Generator* generator_ = nullptr;  // set once by Attach, before ready_
  ExpertCache* experts_ = nullptr;
  WorkerMetrics* metrics_ = nullptr;
  std::string model_name_;
  std::atomic<bool> ready_{false};
  std::optional<tokenizer::ChatTemplate> chat_template_;  // unset: the model has none
  std::atomic<bool> draining_{false};
};

}  // namespace t2::worker
