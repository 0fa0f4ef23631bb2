// WorkerService::Generate: one call per reactor, fed by the scheduler's callbacks.
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "call_status.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/offloaded_call.h"
#include "t2/rpc/status.h"
#include "worker_service.h"

namespace t2::worker {
namespace {

t2::v1::FinishReason ToProto(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kEndOfSequence:
      return t2::v1::FINISH_REASON_EOS;
    case engine::FinishReason::kStopString:
      return t2::v1::FINISH_REASON_STOP;
    case engine::FinishReason::kLength:
      return t2::v1::FINISH_REASON_LENGTH;
  }
  return t2::v1::FINISH_REASON_UNSPECIFIED;
}

}  // namespace

// One Generate call. Its request is prepared on the executor (tokenized, its expert made ready,
// possibly fetched from the registry) and queued; from then on the scheduler's callbacks feed
// the stream. One write is in flight at a time; tokens that arrive meanwhile are merged into
// the next message, so a slow client never stalls the batch and gets fewer, longer messages.
// Deletes itself when gRPC is done with the call (OnDone).
class WorkerService::GenerateCall final
    : public grpc::ServerWriteReactor<t2::v1::WorkerGenerateResponse> {
 public:
  GenerateCall(WorkerService& service, grpc::CallbackServerContext& context,
               const t2::v1::WorkerGenerateRequest& request)
      : service_(service), context_(context), request_(request) {
    if (service_.metrics_ != nullptr) metrics_ = service_.metrics_->StartCall();
    if (!service_.executor_.TrySubmit([this] { Prepare(); })) {
      preparing_ = false;  // no other thread knows this call yet
      End(rpc::ExecutorFull(service_.executor_, "worker", "Generate"));
    }
  }

  void OnCancel() override {
    std::shared_ptr<engine::RequestHandle> handle;
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      handle = handle_;
    }
    // The client went away or its deadline passed: the slot is freed at the next step, and
    // on_done reports CANCELLED. Before the request is queued, Prepare sees `cancelled_`.
    if (handle != nullptr) handle->Cancel();
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> end;
    std::shared_ptr<engine::RequestHandle> handle;
    bool write_next = false;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!ok) {
        handle = handle_;  // the client is gone: stop generating for it
        pending_.reset();
      }
      if (pending_.has_value()) {
        out_ = *std::move(pending_);
        pending_.reset();
        writing_ = write_next = true;
      } else {
        end = std::move(end_after_write_);
        end_after_write_.reset();
      }
    }
    if (write_next) return Write();
    if (end.has_value()) return End(*end);
    if (handle != nullptr) handle->Cancel();  // on_done ends the call
  }

  void OnDone() override { delete this; }

 private:
  // On the executor: the request checked and queued, or the call ended with why not.
  void Prepare() {
    grpc::Status status = rpc::GuardHandler("worker", "Generate", [&] { return Queue(); });
    std::optional<grpc::Status> ended;
    {
      std::lock_guard lock(mu_);
      preparing_ = false;
      ended = std::move(ended_while_preparing_);
    }
    if (!status.ok()) return End(status);  // nothing was queued: no callback will run
    if (ended.has_value()) End(*ended);
  }

  grpc::Status Queue() {
    absl::StatusOr<engine::GenerationRequest> prepared = service_.ToEngineRequest(request_);
    if (!prepared.ok()) return rpc::ToGrpc(prepared.status());
    const absl::Time deadline = DeadlineOf(context_);
    // Held to the end of the call: the adapter stays loaded at least until the request is queued.
    absl::StatusOr<ExpertCache::Lease> lease =
        service_.experts_->Resolve(request_.adapter(), deadline);
    if (!lease.ok()) return AdapterFailed(context_, lease.status());
    prepared->adapter = lease->adapter();
    if (metrics_ != nullptr) metrics_->SetAdapter(lease->adapter());
    lease_ = *std::move(lease);
    engine::StreamCallbacks callbacks;
    callbacks.on_start = [this](double queue_ms) {
      if (metrics_ != nullptr) metrics_->Started(queue_ms / 1000.0);
      std::lock_guard lock(mu_);
      queue_ms_ = queue_ms;
    };
    callbacks.on_tokens = [this](std::string_view text, std::span<const int32_t> tokens,
                                 std::span<const float> logprobs) {
      if (metrics_ != nullptr) metrics_->Tokens(tokens.size());
      t2::v1::WorkerGenerateResponse message;
      message.set_text(std::string(text));
      for (int32_t t : tokens) message.add_token_ids(t);
      for (float lp : logprobs) message.add_logprobs(lp);
      Send(std::move(message), std::nullopt);
    };
    callbacks.on_done = [this](absl::StatusOr<engine::GenerationResult> result) {
      OnGenerated(std::move(result));
    };
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
    }
    // From here the callbacks may run, and may end the call, at any time.
    absl::StatusOr<std::shared_ptr<engine::RequestHandle>> handle =
        service_.generator_->Submit(*std::move(prepared), std::move(callbacks), deadline);
    if (!handle.ok()) return rpc::ToGrpc(handle.status());
    bool cancel_now = false;
    {
      std::lock_guard lock(mu_);
      handle_ = *handle;
      cancel_now = cancelled_;
    }
    if (cancel_now) (*handle)->Cancel();
    return grpc::Status::OK;
  }

  // Writes `message` now, or merges it into the next one while a write is in flight; `end`
  // ends the call once it has been written.
  void Send(t2::v1::WorkerGenerateResponse message, std::optional<grpc::Status> end) {
    {
      std::lock_guard lock(mu_);
      if (end.has_value()) end_after_write_ = std::move(end);
      if (writing_) {
        if (!pending_.has_value()) pending_.emplace();
        pending_->mutable_text()->append(message.text());
        pending_->mutable_token_ids()->MergeFrom(message.token_ids());
        pending_->mutable_logprobs()->MergeFrom(message.logprobs());
        if (message.finish_reason() != t2::v1::FINISH_REASON_UNSPECIFIED) {
          pending_->set_finish_reason(message.finish_reason());
          *pending_->mutable_usage() = message.usage();
        }
        return;
      }
      out_ = std::move(message);
      if (first_) out_.set_queue_ms(queue_ms_);
      first_ = false;
      writing_ = true;
    }
    Write();
  }

  // The scheduler's last word: the finished result goes out as the last message, an error
  // ends the call (after a write in flight).
  void OnGenerated(absl::StatusOr<engine::GenerationResult> result) {
    if (!result.ok()) {
      grpc::Status status = rpc::ToGrpc(result.status());
      {
        std::lock_guard lock(mu_);
        if (cancelled_)
          status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
        pending_.reset();
        if (writing_) {
          end_after_write_ = status;
          return;
        }
      }
      return End(status);
    }
    t2::v1::WorkerGenerateResponse message;
    message.set_finish_reason(ToProto(result->finish_reason));
    message.mutable_usage()->set_prompt_tokens(result->prompt_tokens);
    message.mutable_usage()->set_completion_tokens(static_cast<int64_t>(result->token_ids.size()));
    finish_reason_ = std::string(engine::FinishReasonName(result->finish_reason));
    usage_ = message.usage();
    Send(std::move(message), grpc::Status::OK);
  }

  void Write() { StartWrite(&out_); }

  // Records the call and finishes it: the last thing done with `this`. While Prepare runs
  // (the request may finish before Submit has returned) it only notes the status: Prepare
  // still uses `this`, and ends the call when it is done.
  void End(const grpc::Status& status) {
    {
      std::lock_guard lock(mu_);
      if (preparing_) {
        ended_while_preparing_ = status;
        return;
      }
    }
    if (metrics_ != nullptr) {
      metrics_->Finished(status.error_code(), finish_reason_, usage_.prompt_tokens(),
                         usage_.completion_tokens());
    }
    Finish(status);
  }

  WorkerService& service_;
  grpc::CallbackServerContext& context_;
  const t2::v1::WorkerGenerateRequest& request_;
  std::shared_ptr<WorkerMetrics::Call> metrics_;  // null without metrics
  ExpertCache::Lease lease_;                      // set by Queue, held to the end
  std::string finish_reason_ = "none";            // set with the last message, read by End
  t2::v1::Usage usage_;

  std::mutex mu_;
  std::shared_ptr<engine::RequestHandle> handle_;  // guarded by mu_: once queued
  bool cancelled_ = false;                         // guarded by mu_
  double queue_ms_ = 0;                            // guarded by mu_
  bool first_ = true;                              // guarded by mu_: no message written yet
  t2::v1::WorkerGenerateResponse out_;             // guarded by mu_: the message being written
  bool writing_ = false;                           // guarded by mu_
  std::optional<t2::v1::WorkerGenerateResponse> pending_;  // guarded by mu_: arrived meanwhile
  std::optional<grpc::Status> end_after_write_;            // guarded by mu_
  bool preparing_ = true;                                  // guarded by mu_: Prepare runs
  std::optional<grpc::Status> ended_while_preparing_;      // guarded by mu_
};

grpc::ServerWriteReactor<t2::v1::WorkerGenerateResponse>* WorkerService::Generate(
    grpc::CallbackServerContext* context, const t2::v1::WorkerGenerateRequest* request) {
  if (grpc::Status s = Unready(); !s.ok()) {
    return rpc::FinishedStream<t2::v1::WorkerGenerateResponse>(s);
  }
  return new GenerateCall(*this, *context, *request);
}

}  // namespace t2::worker
