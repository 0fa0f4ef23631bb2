#include "worker_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "call_status.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/offloaded_call.h"
#include "t2/rpc/status.h"

namespace t2::worker {

namespace {

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
