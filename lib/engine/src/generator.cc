#include "t2/engine/generator.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "t2/engine/model_access.h"
#include "t2/engine/stop_strings.h"
#include "t2/formats/gguf.h"
#include "t2/model/llama.h"
#include "t2/svf/mixture.h"
#include "scheduler.h"
#include "svf_adapters.h"

namespace t2::engine {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEndOfSequence: return "eos";
    case FinishReason::kStopString: return "stop";
    case FinishReason::kLength: return "length";
  }
  return "unknown";
}

absl::Status GeneratorOptions::Validate() const {
  if (model.empty()) return absl::InvalidArgumentError("generator.model: empty path");
  if (cpu_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("generator.cpu_threads must be >= 0, got ", cpu_threads));
  }
  if (max_batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("generator.max_batch_size must be >= 1, got ", max_batch_size));
  }
  if (prefix_cache_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("generator.prefix_cache_bytes must be >= 0, got ", prefix_cache_bytes));
  }
  if (svf.has_value()) T2_RETURN_IF_ERROR(svf->Validate());
  return model::LoadOptions{.device = device, .dtype = dtype}.Validate();
}

struct Generator::Impl {
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  GeneratorOptions options;
  std::unique_ptr<SvfAdapters> svf;  // null without GeneratorOptions::svf
  mutable ModelLock model_lock;  // the model and SVF state: the scheduler thread, AddExpert, ...
  // The adapters' names, also kept apart from the model lock: looking one up (each worker
  // request does) must not wait for a decoding step.
  mutable std::mutex names_mu;
  std::set<std::string> names;
  int64_t context_limit = 0;

  // Puts `expert` under `name` (replacing), dropping what was cached for the old one.
  // Model lock held.
  absl::Status RegisterLocked(const std::string& name, svf::Expert expert) {
    scheduler->InvalidateAdapter(name);
    T2_RETURN_IF_ERROR(svf->AddExpert(name, std::move(expert)));
    std::lock_guard<std::mutex> names_lock(names_mu);
    names.insert(name);
    return absl::OkStatus();
  }

  // Declared last: destroyed first, so its thread stops before the model goes away.
  std::unique_ptr<Scheduler> scheduler;
};

Generator::Generator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Generator::~Generator() = default;

absl::StatusOr<std::unique_ptr<Generator>> Generator::Create(const GeneratorOptions& options) {
  T2_RETURN_IF_ERROR(options.Validate());
  if (options.cpu_threads > 0) at::set_num_threads(options.cpu_threads);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  T2_ASSIGN_OR_RETURN(impl->model, model::LlamaModel::Load(options.model,
                                                           {.device = options.device, .dtype = options.dtype}));
  if (std::filesystem::is_directory(options.model)) {
    T2_ASSIGN_OR_RETURN(impl->tokenizer, tokenizer::Tokenizer::FromHfDir(options.model));
  } else {
    T2_ASSIGN_OR_RETURN(auto file, formats::GgufFile::Open(options.model));
    T2_ASSIGN_OR_RETURN(impl->tokenizer, tokenizer::Tokenizer::FromGguf(file));
  }
  if (impl->tokenizer->vocab_size() > impl->model->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer has ", impl->tokenizer->vocab_size(),
                                                   " tokens but the model's vocabulary is ",
                                                   impl->model->config().vocab_size));
  }
  if (options.svf.has_value()) {
    T2_ASSIGN_OR_RETURN(impl->svf, SvfAdapters::Create(*impl->model, *options.svf, options.model));
  }
  const auto& c = impl->model->config();
  impl->context_limit = c.sliding_window > 0 ? std::min(c.sliding_window, c.max_position_embeddings)
                                             : c.max_position_embeddings;
  if (options.max_context > 0) impl->context_limit = std::min(impl->context_limit, options.max_context);
  impl->scheduler = std::make_unique<Scheduler>(Scheduler::Config{
      .model = impl->model.get(),
      .tokenizer = impl->tokenizer.get(),
      .svf = impl->svf.get(),
      .model_lock = &impl->model_lock,
      .slots = options.max_batch_size,
      .max_queue = options.max_queue,
      .merged_only = options.svf.has_value() && options.svf->mode == SvfMode::kMerged,
      .prefix_cache_bytes = options.prefix_cache_bytes});
  return std::unique_ptr<Generator>(new Generator(std::move(impl)));
}

const tokenizer::Tokenizer& Generator::tokenizer() const { return *impl_->tokenizer; }
const model::ModelConfig& Generator::config() const { return impl_->model->config(); }
std::string Generator::device_name() const { return impl_->model->device_name(); }
std::string Generator::dtype_name() const { return impl_->model->dtype_name(); }

absl::Status Generator::ValidateRequest(const GenerationRequest& r) const {
  const auto& c = impl_->model->config();
  if (r.prompt_ids.empty()) return absl::InvalidArgumentError("prompt: empty");
  if (!r.adapter.empty()) {
    if (impl_->svf == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("adapter '", r.adapter,
                                                        "': this generator was created without SVF"));
    }
    if (!impl_->svf->Has(r.adapter)) {
      return absl::NotFoundError(absl::StrCat("adapter '", r.adapter, "' is not loaded"));
    }
  }
  for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
    if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_ids[", i, "] = ", r.prompt_ids[i],
                                                     " is outside the vocabulary of ", c.vocab_size));
    }
  }
  if (r.max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be >= 1, got ", r.max_new_tokens));
  }
  const int64_t context = impl_->context_limit;
  int64_t needed = static_cast<int64_t>(r.prompt_ids.size()) + r.max_new_tokens;
  if (needed > context) {
    return absl::InvalidArgumentError(absl::StrCat("prompt (", r.prompt_ids.size(), " tokens) + max_new_tokens (",
                                                   r.max_new_tokens, ") exceeds the context of ", context));
  }
  T2_RETURN_IF_ERROR(r.sampling.Validate());
  if (r.stop_strings.size() > kMaxStopStrings) {
    return absl::InvalidArgumentError(absl::StrCat("stop_strings: at most ", kMaxStopStrings, " allowed, got ",
                                                   r.stop_strings.size()));
  }
  for (size_t i = 0; i < r.stop_strings.size(); ++i) {
    if (r.stop_strings[i].empty()) return absl::InvalidArgumentError(absl::StrCat("stop_strings[", i, "] is empty"));
    if (r.stop_strings[i].size() > kMaxStopStringBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop_strings[", i, "]: ", r.stop_strings[i].size(), " bytes, at most ",
                       kMaxStopStringBytes, " allowed"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GenerationResult>> Generator::Generate(std::span<const GenerationRequest> requests,
                                                                  const TextCallback& on_text) {
  for (size_t i = 0; i < requests.size(); ++i) {
    if (auto s = ValidateRequest(requests[i]); !s.ok()) return Annotate(s, absl::StrCat("request ", i));
  }
  std::mutex mu;
  std::condition_variable cv;
  size_t remaining = requests.size();
  std::vector<GenerationResult> results(requests.size());
  absl::Status first_error;
  for (size_t i = 0; i < requests.size(); ++i) {
    StreamCallbacks callbacks;
    if (on_text) {
      callbacks.on_tokens = [&on_text, i](std::string_view text, std::span<const int32_t>, std::span<const float>) {
        if (!text.empty()) on_text(i, text);
      };
    }
    callbacks.on_done = [&, i](absl::StatusOr<GenerationResult> result) {
      std::lock_guard<std::mutex> lock(mu);
      if (result.ok()) {
        results[i] = std::move(*result);
      } else if (first_error.ok()) {
        first_error = Annotate(result.status(), absl::StrCat("request ", i));
      }
      if (--remaining == 0) cv.notify_all();
    };
    auto handle = impl_->scheduler->Submit(requests[i], std::move(callbacks), absl::InfiniteFuture(),
                                           /*ignore_queue_cap=*/true);
    if (!handle.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.ok()) first_error = handle.status();
      remaining -= requests.size() - i;  // never submitted
      break;
    }
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return remaining == 0; });
  if (!first_error.ok()) return first_error;
  return results;
}

absl::StatusOr<std::shared_ptr<RequestHandle>> Generator::Submit(GenerationRequest request, StreamCallbacks callbacks,
                                                                 absl::Time deadline) {
  T2_RETURN_IF_ERROR(ValidateRequest(request));
  return impl_->scheduler->Submit(std::move(request), std::move(callbacks), deadline, /*ignore_queue_cap=*/false);
}

absl::StatusOr<std::vector<CompletionScore>> Generator::Score(
    const ScoreRequest& request, absl::Time deadline, const std::function<bool()>& cancelled) {
  GenerationRequest probe;  // reuses the prompt, vocabulary and adapter checks
  probe.prompt_ids = request.prompt_ids;
  probe.adapter = request.adapter;
  probe.max_new_tokens = 1;
  T2_RETURN_IF_ERROR(Annotate(ValidateRequest(probe), "score"));
  if (request.completions.empty()) return absl::InvalidArgumentError("score.completions: empty");
  const int64_t vocab = impl_->model->config().vocab_size;
  for (size_t i = 0; i < request.completions.size(); ++i) {
    const auto& c = request.completions[i];
    if (c.empty()) return absl::InvalidArgumentError(absl::StrCat("score.completions[", i, "]: no tokens"));
    if (static_cast<int64_t>(request.prompt_ids.size() + c.size()) > impl_->context_limit) {
      return absl::InvalidArgumentError(absl::StrCat("score.completions[", i, "]: prompt + completion (",
                                                     request.prompt_ids.size() + c.size(),
                                                     " tokens) exceeds the context of ", impl_->context_limit));
    }
    for (int32_t id : c) {
      if (id < 0 || id >= vocab) {
        return absl::InvalidArgumentError(absl::StrCat("score.completions[", i, "]: token id ", id,
                                                       " outside the vocabulary"));
      }
    }
  }
  if (request.first_token_only) {
    // Completions that begin alike beyond their shared part would get the same score.
    const int64_t shared = SharedCompletionTokens(request.completions);
    std::map<int32_t, size_t> first_own;
    for (size_t i = 0; i < request.completions.size(); ++i) {
      auto [it, added] = first_own.emplace(request.completions[i][shared], i);
      if (!added) {
        return absl::InvalidArgumentError(absl::StrCat(
            "score.completions[", it->second, "] and [", i, "] continue with the same token after the ", shared,
            " tokens all completions share: first_token_only cannot tell them apart"));
      }
    }
  }
  return impl_->scheduler->Score(request, deadline, cancelled);
}

int64_t Generator::context_limit() const { return impl_->context_limit; }
const GeneratorOptions& Generator::options() const { return impl_->options; }
SchedulerStats Generator::scheduler_stats() const { return impl_->scheduler->stats(); }
void Generator::Drain(absl::Time deadline) { impl_->scheduler->Drain(deadline); }

std::string Generator::base_fingerprint() const {
  return impl_->svf == nullptr ? "" : impl_->svf->decomposition().base_fingerprint();
}

std::map<std::string, int64_t> Generator::target_ranks() const {
  std::map<std::string, int64_t> ranks;
  if (impl_->svf == nullptr) return ranks;
  const auto& d = impl_->svf->decomposition();
  for (const auto& name : d.names()) ranks[name] = d.Find(name)->rank();
  return ranks;
}

absl::Status Generator::AddExpert(const std::string& name, const std::filesystem::path& file,
                                  bool allow_base_mismatch) {
  if (impl_->svf == nullptr) return absl::FailedPreconditionError("AddExpert: this generator was created without SVF");
  // Reading and checking the file needs only the decomposition, which never changes.
  T2_ASSIGN_OR_RETURN(auto expert, svf::LoadExpert(file, impl_->svf->decomposition(),
                                                   {.allow_base_mismatch = allow_base_mismatch}));
  std::lock_guard<ModelLock> lock(impl_->model_lock);
  return impl_->RegisterLocked(name, std::move(expert));
}

absl::Status TrainingAccess::AddExpert(Generator& generator, const std::string& name, svf::Expert expert) {
  Generator::Impl& impl = *generator.impl_;
  if (impl.svf == nullptr) return absl::FailedPreconditionError("AddExpert: this generator was created without SVF");
  T2_RETURN_IF_ERROR(svf::ValidateExpert(expert, impl.svf->decomposition()));
  std::lock_guard<ModelLock> lock(impl.model_lock);
  return impl.RegisterLocked(name, std::move(expert));
}

absl::Status TrainingAccess::WithModel(Generator& generator,
                                       absl::FunctionRef<absl::Status(const ModelAccess&)> fn) {
  Generator::Impl& impl = *generator.impl_;
  if (impl.svf == nullptr) return absl::FailedPreconditionError("WithModel: this generator was created without SVF");
  std::lock_guard<ModelLock> lock(impl.model_lock);
  T2_RETURN_IF_ERROR(impl.svf->UseMerged(""));
  return fn(ModelAccess{.model = *impl.model, .decomposition = impl.svf->decomposition()});
}

absl::Status Generator::AddMixture(const std::string& name, const std::vector<std::string>& experts,
                                   const std::vector<double>& alpha, bool per_layer) {
  if (impl_->svf == nullptr) return absl::FailedPreconditionError("AddMixture: this generator was created without SVF");
  std::lock_guard<ModelLock> lock(impl_->model_lock);
  std::vector<const svf::Expert*> parts;
  for (size_t k = 0; k < experts.size(); ++k) {
    const svf::Expert* e = impl_->svf->Find(experts[k]);
    if (e == nullptr) return absl::NotFoundError(absl::StrCat("mixture '", name, "': expert[", k, "] '", experts[k], "' is not loaded"));
    parts.push_back(e);
  }
  T2_ASSIGN_OR_RETURN(auto mixed, svf::MixExperts(parts, {.alpha = alpha, .per_layer = per_layer},
                                                  static_cast<int>(impl_->model->config().num_hidden_layers)));
  return impl_->RegisterLocked(name, std::move(mixed));
}

absl::Status Generator::RemoveAdapter(const std::string& name) {
  if (impl_->svf == nullptr) return absl::NotFoundError(absl::StrCat("adapter '", name, "' is not loaded"));
  std::lock_guard<ModelLock> lock(impl_->model_lock);
  if (impl_->scheduler->InUse(name)) {
    return absl::FailedPreconditionError(absl::StrCat("adapter '", name, "' is used by a queued or running request"));
  }
  impl_->scheduler->InvalidateAdapter(name);
  T2_RETURN_IF_ERROR(impl_->svf->Remove(name));
  std::lock_guard<std::mutex> names_lock(impl_->names_mu);
  impl_->names.erase(name);
  return absl::OkStatus();
}

Generator::SvfStats Generator::svf_stats() const {
  if (impl_->svf == nullptr) return {};
  std::lock_guard<ModelLock> lock(impl_->model_lock);
  return {.compositions = impl_->svf->compositions(),
          .merged_cache_bytes = impl_->svf->merged_cache_bytes(),
          .merged_cache_entries = static_cast<int64_t>(impl_->svf->merged_cache_entries())};
}

std::vector<std::string> Generator::AdapterNames() const {
  std::lock_guard<std::mutex> lock(impl_->names_mu);
  return std::vector<std::string>(impl_->names.begin(), impl_->names.end());
}

}  // namespace t2::engine
