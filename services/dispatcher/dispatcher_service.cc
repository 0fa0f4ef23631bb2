#include "dispatcher_service.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/status.h"
#include "validation.h"
#include "worker_calls.h"

namespace t2::dispatcher {
namespace {

// Runs a handler body; an exception (a bug, or std::bad_alloc) becomes INTERNAL instead of
// taking the process down with every other client's stream.
template <typename Fn>
grpc::Status Guard(std::string_view method, Fn body) {
  try {
    return rpc::ToGrpc(body());
  } catch (const std::exception& e) {
    LogError(absl::StrCat(AsAbsl(method), ": unexpected exception: ", e.what()));
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat(AsAbsl(method), ": internal error"));
  } catch (...) {
    LogError(absl::StrCat(AsAbsl(method), ": unexpected exception"));
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat(AsAbsl(method), ": internal error"));
  }
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
      first_pass_(pool, resolver, options.first_pass),
      adapt_(pool, resolver, options.adapt) {}

grpc::Status DispatcherService::Generate(grpc::ServerContext* context,
                                         const t2::v1::GenerateRequest* request,
                                         t2::v1::GenerateResponse* response) {
  return Guard("Generate",
               [&] { return DoGenerate(CallScope::From(*context), *request, *response); });
}

grpc::Status DispatcherService::GenerateStream(
    grpc::ServerContext* context, const t2::v1::GenerateRequest* request,
    grpc::ServerWriter<t2::v1::GenerateStreamResponse>* writer) {
  return Guard("GenerateStream",
               [&] { return DoGenerateStream(CallScope::From(*context), *request, *writer); });
}

grpc::Status DispatcherService::Classify(grpc::ServerContext* context,
                                         const t2::v1::ClassifyRequest* request,
                                         t2::v1::ClassifyResponse* response) {
  return Guard("Classify",
               [&] { return DoClassify(CallScope::From(*context), *request, *response); });
}

grpc::Status DispatcherService::Adapt(grpc::ServerContext* context,
                                      const t2::v1::AdaptRequest* request,
                                      t2::v1::AdaptResponse* response) {
  return Guard("Adapt", [&] { return DoAdapt(CallScope::From(*context), *request, *response); });
}

absl::Status DispatcherService::DoGenerate(const CallScope& scope,
                                           const t2::v1::GenerateRequest& request,
                                           t2::v1::GenerateResponse& response) {
  T2_RETURN_IF_ERROR(ValidateGenerateRequest(request));
  T2_ASSIGN_OR_RETURN(FirstPassResult first,
                      first_pass_.Run(request.adaptation(), RequestInput::Of(request), scope));
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
    grpc::ServerWriter<t2::v1::GenerateStreamResponse>& writer) {
  T2_RETURN_IF_ERROR(ValidateGenerateRequest(request));
  T2_ASSIGN_OR_RETURN(FirstPassResult first,
                      first_pass_.Run(request.adaptation(), RequestInput::Of(request), scope));
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
                                           t2::v1::ClassifyResponse& response) {
  T2_RETURN_IF_ERROR(ValidateClassifyRequest(request));
  T2_ASSIGN_OR_RETURN(FirstPassResult first,
                      first_pass_.Run(request.adaptation(), RequestInput::Of(request), scope));
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
