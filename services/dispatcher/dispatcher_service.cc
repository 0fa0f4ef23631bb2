#include "dispatcher_service.h"

#include <stop_token>

#include "absl/strings/str_cat.h"
#include "generate_calls.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/offloaded_call.h"
#include "t2/rpc/status.h"
#include "validation.h"
#include "worker_calls.h"

namespace t2::dispatcher {

void NoteFirstPass(const FirstPassResult& first, DispatcherMetrics::Call& call) {
  if (!first.first_pass.category().empty()) call.category = first.first_pass.category();
  call.first_pass_seconds = first.first_pass.duration_ms() / 1000.0;
  call.confidence = FirstPassConfidence(first.label_logprobs);
}

t2::v1::WorkerGenerateRequest SecondPassRequest(const t2::v1::GenerateRequest& request,
                                                const t2::v1::AdapterSpec& adapter) {
  t2::v1::WorkerGenerateRequest out;
  if (request.has_chat()) {
    *out.mutable_chat() = request.chat();
  } else if (request.input_case() == t2::v1::GenerateRequest::kPrompt) {
    out.set_prompt(request.prompt());
  }
  out.set_max_new_tokens(request.max_new_tokens());
  if (request.has_sampling()) *out.mutable_sampling() = request.sampling();
  *out.mutable_stop() = request.stop();
  *out.mutable_adapter() = adapter;
  return out;
}

DispatcherService::DispatcherService(WorkerPool& pool, ExpertResolver& resolver, Options options)
    : pool_(pool),
      metrics_(options.metrics),
      first_pass_(pool, resolver, options.first_pass),
      adapt_(pool, resolver, options.adapt),
      executor_(options.handlers) {}

template <typename Body>
grpc::ServerUnaryReactor* DispatcherService::Offload(grpc::CallbackServerContext* context,
                                                     std::string method,
                                                     DispatcherMetrics::Call call, Body body) {
  const absl::Time start = absl::Now();
  return rpc::RunOffloaded(
      executor_, "dispatcher", method,
      [this, context, start, method, call = std::move(call),
       body = std::move(body)](std::stop_token stop) mutable {
        // Guarded here too, so that a call that threw is recorded as the INTERNAL it returns.
        grpc::Status status = rpc::GuardHandler("dispatcher", method, [&] {
          return rpc::ToGrpc(body(CallScope::From(*context, std::move(stop)), call));
        });
        if (metrics_ != nullptr) {
          metrics_->Record(call, status.error_code(), absl::ToDoubleSeconds(absl::Now() - start));
        }
        return status;
      });
}

grpc::ServerUnaryReactor* DispatcherService::Generate(grpc::CallbackServerContext* context,
                                                      const t2::v1::GenerateRequest* request,
                                                      t2::v1::GenerateResponse* response) {
  return new GenerateCall(
      {.pool = pool_, .first_pass = first_pass_, .executor = executor_, .metrics = metrics_},
      *context, *request, *response);
}

grpc::ServerWriteReactor<t2::v1::GenerateStreamResponse>* DispatcherService::GenerateStream(
    grpc::CallbackServerContext* context, const t2::v1::GenerateRequest* request) {
  return new GenerateStreamCall(
      {.pool = pool_, .first_pass = first_pass_, .executor = executor_, .metrics = metrics_},
      *context, *request);
}

grpc::ServerUnaryReactor* DispatcherService::Classify(grpc::CallbackServerContext* context,
                                                      const t2::v1::ClassifyRequest* request,
                                                      t2::v1::ClassifyResponse* response) {
  DispatcherMetrics::Call call;
  call.strategy = StrategyLabel(request->adaptation());
  call.generates = false;
  return Offload(context, "Classify", std::move(call),
                 [this, request, response](const CallScope& scope, DispatcherMetrics::Call& call) {
                   return DoClassify(scope, *request, *response, call);
                 });
}

grpc::ServerUnaryReactor* DispatcherService::Adapt(grpc::CallbackServerContext* context,
                                                   const t2::v1::AdaptRequest* request,
                                                   t2::v1::AdaptResponse* response) {
  const absl::Time start = absl::Now();
  return rpc::RunOffloaded(
      executor_, "dispatcher", "Adapt",
      [this, context, request, response, start](std::stop_token stop) {
        grpc::Status status =
            rpc::ToGrpc(DoAdapt(CallScope::From(*context, std::move(stop)), *request, *response));
        if (metrics_ != nullptr) {
          metrics_->RecordAdapt(status.error_code(), absl::ToDoubleSeconds(absl::Now() - start),
                                status.ok() ? response->evaluations() : 0);
        }
        return status;
      });
}

absl::Status DispatcherService::DoClassify(const CallScope& scope,
                                           const t2::v1::ClassifyRequest& request,
                                           t2::v1::ClassifyResponse& response,
                                           DispatcherMetrics::Call& call) {
  T2_RETURN_IF_ERROR(ValidateClassifyRequest(request));
  T2_ASSIGN_OR_RETURN(FirstPassResult first,
                      first_pass_.Run(request.adaptation(), RequestInput::Of(request), scope));
  NoteFirstPass(first, call);
  *response.mutable_first_pass() = std::move(first.first_pass);
  for (const auto& [label, logprob] : first.label_logprobs)
    (*response.mutable_label_logprobs())[label] = logprob;
  response.set_raw_output(std::move(first.raw_output));
  return absl::OkStatus();
}

absl::Status DispatcherService::DoAdapt(const CallScope& scope, const t2::v1::AdaptRequest& request,
                                        t2::v1::AdaptResponse& response) {
  T2_ASSIGN_OR_RETURN(AdaptPlan plan, ValidateAdaptRequest(request));
  T2_ASSIGN_OR_RETURN(response, adapt_.Run(plan, scope));
  return absl::OkStatus();
}

}  // namespace t2::dispatcher
