#include "dispatcher_service.h"

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/status.h"
#include "validation.h"
#include "worker_calls.h"

namespace t2::dispatcher {
namespace {

// Handler bodies speak absl::Status; the shared guard keeps an exception to the one call.
template <typename Fn>
grpc::Status Guard(std::string_view method, Fn body) {
  return rpc::GuardHandler("dispatcher", method, [&] { return rpc::ToGrpc(body()); });
}

// What the first pass tells the call's metrics.
void NoteFirstPass(const FirstPassResult& first, DispatcherMetrics::Call& call) {
  if (!first.first_pass.category().empty()) call.category = first.first_pass.category();
  call.first_pass_seconds = first.first_pass.duration_ms() / 1000.0;
  call.confidence = FirstPassConfidence(first.label_logprobs);
}

}  // namespace

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
      adapt_(pool, resolver, options.adapt) {}

grpc::Status DispatcherService::Finish(const DispatcherMetrics::Call& call, absl::Time start,
                                       grpc::Status status) {
  if (metrics_ != nullptr) metrics_->Record(call, status.error_code(), absl::ToDoubleSeconds(absl::Now() - start));
  return status;
}

grpc::Status DispatcherService::Generate(grpc::ServerContext* context,
                                         const t2::v1::GenerateRequest* request,
                                         t2::v1::GenerateResponse* response) {
  const absl::Time start = absl::Now();
  DispatcherMetrics::Call call;
  call.strategy = StrategyLabel(request->adaptation());
  return Finish(call, start, Guard("Generate", [&] {
                  return DoGenerate(CallScope::From(*context), *request, *response, call);
                }));
}

grpc::Status DispatcherService::GenerateStream(
    grpc::ServerContext* context, const t2::v1::GenerateRequest* request,
    grpc::ServerWriter<t2::v1::GenerateStreamResponse>* writer) {
  const absl::Time start = absl::Now();
  DispatcherMetrics::Call call;
  call.strategy = StrategyLabel(request->adaptation());
  return Finish(call, start, Guard("GenerateStream", [&] {
                  return DoGenerateStream(CallScope::From(*context), *request, *writer, call);
                }));
}

grpc::Status DispatcherService::Classify(grpc::ServerContext* context,
                                         const t2::v1::ClassifyRequest* request,
                                         t2::v1::ClassifyResponse* response) {
  const absl::Time start = absl::Now();
  DispatcherMetrics::Call call;
  call.strategy = StrategyLabel(request->adaptation());
  call.generates = false;
  return Finish(call, start, Guard("Classify", [&] {
                  return DoClassify(CallScope::From(*context), *request, *response, call);
                }));
}

grpc::Status DispatcherService::Adapt(grpc::ServerContext* context,
                                      const t2::v1::AdaptRequest* request,
                                      t2::v1::AdaptResponse* response) {
  const absl::Time start = absl::Now();
  grpc::Status status =
      Guard("Adapt", [&] { return DoAdapt(CallScope::From(*context), *request, *response); });
  if (metrics_ != nullptr) {
    metrics_->RecordAdapt(status.error_code(), absl::ToDoubleSeconds(absl::Now() - start),
                          status.ok() ? response->evaluations() : 0);
  }
  return status;
}

absl::Status DispatcherService::DoGenerate(const CallScope& scope,
                                           const t2::v1::GenerateRequest& request,
                                           t2::v1::GenerateResponse& response,
                                           DispatcherMetrics::Call& call) {
  T2_RETURN_IF_ERROR(ValidateGenerateRequest(request));
  T2_ASSIGN_OR_RETURN(FirstPassResult first,
                      first_pass_.Run(request.adaptation(), RequestInput::Of(request), scope));
  NoteFirstPass(first, call);
  std::string text;
  std::string worker;
  T2_RETURN_IF_ERROR(StreamGenerate(
      pool_, SecondPassRequest(request, first.first_pass.spec()), scope,
      [&](const t2::v1::WorkerGenerateResponse& m) {
        text += m.text();
        if (m.finish_reason() != t2::v1::FINISH_REASON_UNSPECIFIED) {
          response.set_finish_reason(m.finish_reason());
          *response.mutable_usage() = m.usage();
        }
        return true;
      },
      &worker));
  response.set_text(std::move(text));
  *response.mutable_first_pass() = std::move(first.first_pass);
  response.set_worker(worker);
  return absl::OkStatus();
}

absl::Status DispatcherService::DoGenerateStream(
    const CallScope& scope, const t2::v1::GenerateRequest& request,
    grpc::ServerWriter<t2::v1::GenerateStreamResponse>& writer, DispatcherMetrics::Call& call) {
  T2_RETURN_IF_ERROR(ValidateGenerateRequest(request));
  T2_ASSIGN_OR_RETURN(FirstPassResult first,
                      first_pass_.Run(request.adaptation(), RequestInput::Of(request), scope));
  NoteFirstPass(first, call);
  // The choice goes out at once, alone: a client sees what the first pass decided (and what
  // it cost) before the first token, which may wait for a batch slot.
  t2::v1::GenerateStreamResponse head;
  *head.mutable_first_pass() = first.first_pass;
  if (!writer.Write(head)) return scope.CancelledStatus();
  return StreamGenerate(pool_, SecondPassRequest(request, first.first_pass.spec()), scope,
                        [&writer](const t2::v1::WorkerGenerateResponse& m) {
                          t2::v1::GenerateStreamResponse out;
                          out.set_text(m.text());
                          if (m.finish_reason() != t2::v1::FINISH_REASON_UNSPECIFIED) {
                            out.set_finish_reason(m.finish_reason());
                            *out.mutable_usage() = m.usage();
                          }
                          return writer.Write(out);
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
