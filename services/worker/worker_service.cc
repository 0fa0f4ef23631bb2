#include "worker_service.h"

#include <chrono>
#include <mutex>
#include <optional>
#include <span>

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/metadata_keys.h"
#include "t2/rpc/offloaded_call.h"
#include "t2/rpc/status.h"

namespace t2::worker {

namespace {

using t2::v1::FinishReason;

FinishReason ToProto(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kEndOfSequence: return t2::v1::FINISH_REASON_EOS;
    case engine::FinishReason::kStopString: return t2::v1::FINISH_REASON_STOP;
    case engine::FinishReason::kLength: return t2::v1::FINISH_REASON_LENGTH;
  }
  return t2::v1::FINISH_REASON_UNSPECIFIED;
}

// An expert that could not be made ready. UNAVAILABLE here is the registry's (the worker
// itself is answering): it is marked so, for the dispatcher's routing (t2/rpc/metadata_keys.h).
grpc::Status AdapterFailed(grpc::ServerContextBase& context, const absl::Status& status) {
  if (absl::IsUnavailable(status)) {
    context.AddTrailingMetadata(rpc::kUnavailableCauseKey, rpc::kUnavailableCauseRegistry);
  }
  return rpc::ToGrpc(status);
}

// The call's deadline for the scheduler (gRPC's "none" is the far future).
absl::Time DeadlineOf(const grpc::ServerContextBase& context) {
  auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// Text is measured before it is tokenized: tokenizing runs on a handler thread, outside the
// queue cap, in time that grows with the text. Ordinary text takes about 4 bytes a token, so
// more than this many bytes per position of the context could not fit it.
constexpr int64_t kMaxBytesPerContextToken = 32;
// Messages of one chat: each is a pass through the chat template.
constexpr int kMaxChatMessages = 1024;

absl::Status CheckInput(bool has_chat, bool has_prompt, const t2::v1::Chat& chat,
                        const std::string& prompt, int64_t context) {
  const int64_t max_bytes = kMaxBytesPerContextToken * context;
  auto too_long = [&](std::string_view field, int64_t bytes) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": ", bytes, " bytes, at most ",
                                                   max_bytes, " (", kMaxBytesPerContextToken,
                                                   " per token of the context of ", context, ")"));
  };
  if (has_chat) {
    if (chat.messages_size() == 0) return absl::InvalidArgumentError("chat.messages: empty");
    if (chat.messages_size() > kMaxChatMessages) {
      return absl::InvalidArgumentError(absl::StrCat("chat.messages: ", chat.messages_size(),
                                                     " messages, at most ", kMaxChatMessages));
    }
    int64_t bytes = 0;
    for (const auto& m : chat.messages())
      bytes += static_cast<int64_t>(m.role().size() + m.content().size());
    if (bytes > max_bytes) return too_long("chat.messages", bytes);
  }
  if (has_prompt && prompt.empty()) return absl::InvalidArgumentError("prompt: empty");
  if (has_prompt && static_cast<int64_t>(prompt.size()) > max_bytes)
    return too_long("prompt", prompt.size());
  if (!has_chat && !has_prompt) return absl::InvalidArgumentError("input: neither chat nor prompt is set");
  return absl::OkStatus();
}

}  // namespace

void WorkerService::Attach(engine::Generator& generator, ExpertCache& experts, std::string model_name,
                           WorkerMetrics* metrics) {
  generator_ = &generator;
  experts_ = &experts;
  metrics_ = metrics;
  model_name_ = std::move(model_name);
  const auto& source = generator_->tokenizer().chat_template();
  if (!source.empty()) {
    auto tmpl = tokenizer::ChatTemplate::FromJinja(source);
    if (tmpl.ok()) {
      chat_template_ = std::move(*tmpl);
    } else {
      LogWarning(absl::StrCat("chat requests disabled: ", tmpl.status().ToString()));
    }
  }
  ready_ = true;
}

grpc::Status WorkerService::Unready() const {
  if (draining_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down");
  if (!ready_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is loading its model");
  return grpc::Status::OK;
}

absl::StatusOr<std::vector<int32_t>> WorkerService::Tokenize(const t2::v1::Chat* chat,
                                                             const std::string* prompt) const {
  if (prompt != nullptr) return generator_->tokenizer().Encode(*prompt, /*add_special=*/true);
  if (!chat_template_.has_value()) return absl::FailedPreconditionError("chat: the model has no chat template");
  std::vector<tokenizer::ChatMessage> messages;
  for (const auto& m : chat->messages()) messages.push_back({m.role(), m.content()});
  auto ids = tokenizer::EncodeChat(generator_->tokenizer(), messages);
  if (!ids.ok()) return Annotate(ids.status(), "chat");
  return ids;
}

absl::StatusOr<engine::GenerationRequest> WorkerService::ToEngineRequest(
    const t2::v1::WorkerGenerateRequest& r) const {
  T2_RETURN_IF_ERROR(CheckInput(r.has_chat(),
                                r.input_case() == t2::v1::WorkerGenerateRequest::kPrompt, r.chat(),
                                r.prompt(), generator_->context_limit()));
  engine::GenerationRequest out;
  T2_ASSIGN_OR_RETURN(out.prompt_ids,
                      Tokenize(r.has_chat() ? &r.chat() : nullptr,
                               r.input_case() == t2::v1::WorkerGenerateRequest::kPrompt ? &r.prompt() : nullptr));
  out.max_new_tokens = r.max_new_tokens();
  const auto& s = r.sampling();
  out.sampling.temperature = s.temperature();
  out.sampling.top_k = s.top_k();
  out.sampling.top_p = s.top_p() == 0.0f ? 1.0f : s.top_p();
  if (s.has_seed()) out.sampling.seed = s.seed();
  out.stop_strings.assign(r.stop().begin(), r.stop().end());
  out.return_logprobs = r.return_logprobs();
  // Everything the engine can check without the adapter, so that bad input never waits
  // for a registry fetch.
  T2_RETURN_IF_ERROR(generator_->ValidateRequest(out));
  return out;
}

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

grpc::ServerUnaryReactor* WorkerService::Score(grpc::CallbackServerContext* context,
                                               const t2::v1::ScoreRequest* request,
                                               t2::v1::ScoreResponse* response) {
  if (grpc::Status s = Unready(); !s.ok()) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(s);
    return reactor;
  }
  return rpc::RunOffloaded(executor_, "worker", "Score", [=, this](std::stop_token stop) {
    return RunScore(*context, *request, *response, stop);
  });
}

grpc::Status WorkerService::RunScore(grpc::CallbackServerContext& context,
                                     const t2::v1::ScoreRequest& request,
                                     t2::v1::ScoreResponse& response, const std::stop_token& stop) {
  const absl::Time start = absl::Now();
  const bool has_prompt = request.input_case() == t2::v1::ScoreRequest::kPrompt;
  if (auto s = CheckInput(request.has_chat(), has_prompt, request.chat(), request.prompt(),
                          generator_->context_limit());
      !s.ok()) {
    return rpc::ToGrpc(s);
  }
  constexpr int kMaxCompletions = 64;
  if (request.completions_size() < 1 || request.completions_size() > kMaxCompletions) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("completions: want 1..", kMaxCompletions, ", got ",
                                     request.completions_size()));
  }
  // Every completion is checked before anything is tokenized, the prompt included.
  const int64_t max_bytes = kMaxBytesPerContextToken * generator_->context_limit();
  for (int i = 0; i < request.completions_size(); ++i) {
    const int64_t bytes = static_cast<int64_t>(request.completions(i).size());
    if (bytes == 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("completions[", i, "]: empty"));
    }
    if (bytes > max_bytes) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("completions[", i, "]: ", bytes, " bytes, at most ", max_bytes));
    }
  }
  engine::ScoreRequest score;
  auto ids = Tokenize(request.has_chat() ? &request.chat() : nullptr,
                      has_prompt ? &request.prompt() : nullptr);
  if (!ids.ok()) return rpc::ToGrpc(ids.status());
  score.prompt_ids = std::move(*ids);
  for (const std::string& completion : request.completions()) {
    score.completions.push_back(generator_->tokenizer().Encode(completion, /*add_special=*/false));
  }
  auto lease = experts_->Resolve(request.adapter(), DeadlineOf(context));
  if (!lease.ok()) return AdapterFailed(context, lease.status());
  score.adapter = lease->adapter();
  score.first_token_only = request.first_token_only();
  auto scores =
      generator_->Score(score, DeadlineOf(context), [&stop] { return stop.stop_requested(); });
  if (!scores.ok()) return rpc::ToGrpc(scores.status());
  for (const auto& s : *scores) {
    auto* c = response.add_completions();
    c->set_logprob(s.logprob);
    c->set_tokens(s.tokens);
  }
  response.set_duration_ms(absl::ToDoubleMilliseconds(absl::Now() - start));
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* WorkerService::Info(grpc::CallbackServerContext* context,
                                              const t2::v1::WorkerInfoRequest*,
                                              t2::v1::WorkerInfo* info) {
  // Answered on gRPC's thread: it only reads counters.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!ready_) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is loading its model"));
  } else {
    reactor->Finish(rpc::GuardHandler("worker", "Info", [&] { return RunInfo(info); }));
  }
  return reactor;
}

grpc::Status WorkerService::RunInfo(t2::v1::WorkerInfo* info) {
  const auto& options = generator_->options();
  const auto stats = generator_->scheduler_stats();
  info->set_model(model_name_);
  info->set_base_fingerprint(generator_->base_fingerprint());
  info->set_svf_targets(
      options.svf.has_value() ? std::string(svf::TargetSetName(options.svf->targets)) : "");
  info->set_device(generator_->device_name());
  info->set_dtype(generator_->dtype_name());
  info->set_context_tokens(generator_->context_limit());
  info->set_max_batch_size(options.max_batch_size);
  info->set_max_queue(options.max_queue);
  info->set_active(stats.active);
  info->set_queued(stats.queued);
  info->set_num_layers(static_cast<int32_t>(generator_->config().num_hidden_layers));
  for (const auto& name : experts_->loaded()) info->add_loaded_experts(name);
  info->set_experts_fetched(experts_->fetched());
  info->set_experts_prefetched(experts_->prefetched());
  info->set_prefix_cache_bytes(stats.prefix_cache_bytes);
  info->set_prefix_cache_hits(stats.prefix_hits);
  info->set_prefix_reused_tokens(stats.prefix_reused_tokens);
  return grpc::Status::OK;
}

}  // namespace t2::worker
