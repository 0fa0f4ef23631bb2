#include "generate_calls.h"

#include "dispatcher_service.h"
#include "t2/common/status.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/offloaded_call.h"
#include "t2/rpc/status.h"
#include "validation.h"

namespace t2::dispatcher {

namespace {

// On the executor: the request checked and its first pass run, recorded in `call`.
absl::StatusOr<FirstPassResult> CheckAndRunFirstPass(const GenerateDeps& deps,
                                                     const t2::v1::GenerateRequest& request,
                                                     const CallScope& scope,
                                                     DispatcherMetrics::Call& call) {
  T2_RETURN_IF_ERROR(ValidateGenerateRequest(request));
  T2_ASSIGN_OR_RETURN(FirstPassResult first,
                      deps.first_pass.Run(request.adaptation(), RequestInput::Of(request), scope));
  NoteFirstPass(first, call);
  return first;
}

void Record(const GenerateDeps& deps, const DispatcherMetrics::Call& call, absl::Time start,
            const grpc::Status& status) {
  if (deps.metrics != nullptr) {
    deps.metrics->Record(call, status.error_code(), absl::ToDoubleSeconds(absl::Now() - start));
  }
}

}  // namespace

GenerateCall::GenerateCall(const GenerateDeps& deps, grpc::CallbackServerContext& context,
                           const t2::v1::GenerateRequest& request,
                           t2::v1::GenerateResponse& response)
    : deps_(deps), context_(context), request_(request), response_(response) {
  call_.strategy = StrategyLabel(request.adaptation());
  if (!deps_.executor.TrySubmit([this] { RunFirstPass(); })) {
    End(rpc::ExecutorFull(deps_.executor, "dispatcher", "Generate"));
  }
}

void GenerateCall::RunFirstPass() {
  const CallScope scope = CallScope::From(context_, stop_.get_token());
  grpc::Status status = rpc::GuardHandler("dispatcher", "Generate", [&] {
    absl::StatusOr<FirstPassResult> first = CheckAndRunFirstPass(deps_, request_, scope, call_);
    if (!first.ok()) return rpc::ToGrpc(first.status());
    *response_.mutable_first_pass() = std::move(first->first_pass);
    // Held here only: once begun it keeps itself alive until its end, which may finish the
    // call (and delete `this`) before Begin returns.
    std::shared_ptr<GenerateRelay> relay = GenerateRelay::Create(
        deps_.pool, SecondPassRequest(request_, response_.first_pass().spec()), scope,
        [this](const t2::v1::WorkerGenerateResponse& m) {
          response_.mutable_text()->append(m.text());
          if (m.finish_reason() != t2::v1::FINISH_REASON_UNSPECIFIED) {
            response_.set_finish_reason(m.finish_reason());
            *response_.mutable_usage() = m.usage();
          }
          return true;
        },
        [this](const absl::Status& s, const std::string& worker) { OnRelayDone(s, worker); });
    relay->Begin();
    return grpc::Status::OK;
  });
  if (!status.ok()) End(status);
}

void GenerateCall::OnRelayDone(const absl::Status& status, const std::string& worker) {
  if (status.ok()) response_.set_worker(worker);
  End(rpc::ToGrpc(status));
}

void GenerateCall::End(const grpc::Status& status) {
  Record(deps_, call_, start_, status);
  Finish(status);
}

GenerateStreamCall::GenerateStreamCall(const GenerateDeps& deps,
                                       grpc::CallbackServerContext& context,
                                       const t2::v1::GenerateRequest& request)
    : deps_(deps), context_(context), request_(request) {
  call_.strategy = StrategyLabel(request.adaptation());
  if (!deps_.executor.TrySubmit([this] { RunFirstPass(); })) {
    End(rpc::ExecutorFull(deps_.executor, "dispatcher", "GenerateStream"));
  }
}

void GenerateStreamCall::RunFirstPass() {
  const CallScope scope = CallScope::From(context_, stop_.get_token());
  grpc::Status status = rpc::GuardHandler("dispatcher", "GenerateStream", [&] {
    absl::StatusOr<FirstPassResult> first = CheckAndRunFirstPass(deps_, request_, scope, call_);
    if (!first.ok()) return rpc::ToGrpc(first.status());
    std::shared_ptr<GenerateRelay> relay = GenerateRelay::Create(
        deps_.pool, SecondPassRequest(request_, first->first_pass.spec()), scope,
        [this](const t2::v1::WorkerGenerateResponse& m) { return Pass(m); },
        [this](const absl::Status& s, const std::string&) { OnRelayDone(s); });
    // The choice goes out at once, alone: a client sees what the first pass decided (and what
    // it cost) before the first token, which may wait for a batch slot. The relay begins
    // when it has been written.
    {
      std::lock_guard lock(mu_);
      relay_ = std::move(relay);
      *out_.mutable_first_pass() = std::move(first->first_pass);
      writing_ = true;
    }
    Write();
    return grpc::Status::OK;
  });
  if (!status.ok()) End(status);
}

namespace {

// Adds a worker message to the client's message: text appended, the end copied.
void Merge(const t2::v1::WorkerGenerateResponse& m, t2::v1::GenerateStreamResponse& out) {
  out.mutable_text()->append(m.text());
  if (m.finish_reason() != t2::v1::FINISH_REASON_UNSPECIFIED) {
    out.set_finish_reason(m.finish_reason());
    *out.mutable_usage() = m.usage();
  }
}

}  // namespace

void GenerateStreamCall::Write() { StartWrite(&out_); }

bool GenerateStreamCall::Pass(const t2::v1::WorkerGenerateResponse& m) {
  {
    std::lock_guard lock(mu_);
    if (writing_) {
      Merge(m, pending_);
      has_pending_ = true;
      return true;
    }
    out_.Clear();
    Merge(m, out_);
    writing_ = true;
  }
  Write();
  return true;
}

void GenerateStreamCall::OnWriteDone(bool ok) {
  std::shared_ptr<GenerateRelay> relay;
  std::optional<grpc::Status> end;
  bool head = false;
  bool write_next = false;
  {
    std::lock_guard lock(mu_);
    writing_ = false;
    head = out_.has_first_pass();
    relay = relay_;
    if (ok && has_pending_) {
      out_ = std::move(pending_);
      pending_.Clear();
      has_pending_ = false;
      writing_ = write_next = true;
    } else {
      end = std::move(end_after_write_);
      end_after_write_.reset();
    }
  }
  if (write_next) return Write();
  if (end.has_value()) return End(*end);  // the relay is over
  if (!ok) {
    // The client is gone (OnCancel follows). Before the relay began there is nothing to stop;
    // after, its end comes through OnRelayDone.
    if (head) return End(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    return relay->Stop(absl::CancelledError("the client went away"));
  }
  if (head) relay->Begin();
}

void GenerateStreamCall::OnRelayDone(const absl::Status& status) {
  {
    std::lock_guard lock(mu_);
    if (writing_) {
      // The worker's last message is still being written; OnWriteDone ends the call.
      end_after_write_ = rpc::ToGrpc(status);
      return;
    }
  }
  End(rpc::ToGrpc(status));
}

void GenerateStreamCall::End(const grpc::Status& status) {
  Record(deps_, call_, start_, status);
  Finish(status);
}

}  // namespace t2::dispatcher
