#include "t2/engine/generator.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "t2/engine/stop_strings.h"
#include "t2/formats/gguf.h"
#include "t2/model/llama.h"
#include "t2/svf/mixture.h"
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
  if (svf.has_value()) T2_RETURN_IF_ERROR(svf->Validate());
  return model::LoadOptions{.device = device, .dtype = dtype}.Validate();
}

struct Generator::Impl {
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  GeneratorOptions options;
  std::unique_ptr<SvfAdapters> svf;  // null without GeneratorOptions::svf
  mutable std::mutex mutex;  // one batch at a time: the model's Forward is not re-entrant

  // Runs requests[i] for every i in `indices` as one batch, writing results[i].
  absl::Status RunBatch(std::span<const GenerationRequest> requests, std::span<const size_t> indices,
                        std::vector<GenerationResult>& results, const TextCallback& on_text,
                        const model::RowAdapters* adapters);
  // One chunk of at most max_batch_size requests, with the SVF policy for its adapters.
  absl::Status RunChunk(std::span<const GenerationRequest> requests, std::span<const size_t> indices,
                        std::vector<GenerationResult>& results, const TextCallback& on_text);
};

namespace {

// Everything one request carries through its decode loop.
struct RequestState {
  RequestState(const GenerationRequest& r, const tokenizer::Tokenizer& tok)
      : request(&r), sampler(r.sampling), decoder(tok, /*skip_special=*/true), stops(r.stop_strings) {}
  const GenerationRequest* request;
  Sampler sampler;
  tokenizer::StreamDecoder decoder;
  StopStringMatcher stops;
  bool done = false;
};

}  // namespace

absl::Status Generator::Impl::RunChunk(std::span<const GenerationRequest> requests, std::span<const size_t> indices,
                                       std::vector<GenerationResult>& results, const TextCallback& on_text) {
  if (svf == nullptr) return RunBatch(requests, indices, results, on_text, nullptr);
  std::vector<std::string> names;
  for (size_t i : indices) names.push_back(requests[i].adapter);
  if (svf->RunFactored(names)) {
    T2_ASSIGN_OR_RETURN(auto adapters, svf->Factored(names));
    return RunBatch(requests, indices, results, on_text, &adapters);
  }
  // Merged: one sub-batch per adapter, each with its W' in the weights.
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i : indices) groups[requests[i].adapter].push_back(i);
  for (const auto& [name, group] : groups) {
    T2_RETURN_IF_ERROR(svf->UseMerged(name));
    T2_RETURN_IF_ERROR(RunBatch(requests, group, results, on_text, nullptr));
  }
  return absl::OkStatus();
}

absl::Status Generator::Impl::RunBatch(std::span<const GenerationRequest> all, std::span<const size_t> indices,
                                       std::vector<GenerationResult>& results, const TextCallback& on_text,
                                       const model::RowAdapters* adapters) {
  std::vector<GenerationRequest> requests;  // this batch's rows, in order
  requests.reserve(indices.size());
  for (size_t i : indices) requests.push_back(all[i]);
  const int64_t batch = static_cast<int64_t>(requests.size());
  const int64_t vocab = model->config().vocab_size;
  const auto& stop_ids = tokenizer->special().stop_ids;
  std::vector<RequestState> states;
  states.reserve(batch);
  int64_t widest = 0, capacity = 0;
  for (const auto& r : requests) {
    states.emplace_back(r, *tokenizer);
    widest = std::max<int64_t>(widest, r.prompt_ids.size());
    capacity = std::max<int64_t>(capacity, r.prompt_ids.size() + r.max_new_tokens);
  }
  T2_ASSIGN_OR_RETURN(auto cache, model->NewCache(batch, capacity));

  // Prefill: all prompts in one right-padded batch.
  auto tokens = at::zeros({batch, widest}, at::kLong);
  std::vector<int64_t> lengths(batch);
  auto* tok = tokens.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const auto& ids = requests[b].prompt_ids;
    std::copy(ids.begin(), ids.end(), tok + b * widest);
    lengths[b] = static_cast<int64_t>(ids.size());
    results[indices[b]].prompt_tokens = lengths[b];
  }
  T2_ASSIGN_OR_RETURN(at::Tensor logits, model->Forward(tokens, lengths, cache, false, adapters));

  auto emit = [&](int64_t b, const std::string& text) {
    if (text.empty()) return;
    results[indices[b]].text += text;
    if (on_text) on_text(indices[b], text);
  };
  auto finish = [&](int64_t b, FinishReason reason) {
    RequestState& s = states[b];
    s.done = true;
    results[indices[b]].finish_reason = reason;
    if (reason != FinishReason::kStopString) {
      emit(b, s.stops.Feed(s.decoder.Finish()));
      emit(b, s.stops.Flush());
    }
  };

  while (true) {
    const float* rows = logits.data_ptr<float>();
    auto step = at::zeros({batch, 1}, at::kLong);
    std::vector<int64_t> step_lengths(batch, 0);
    bool any_active = false;
    for (int64_t b = 0; b < batch; ++b) {
      RequestState& s = states[b];
      if (s.done) continue;
      std::span<const float> row(rows + b * vocab, static_cast<size_t>(vocab));
      int32_t next = s.sampler.Sample(row);
      GenerationResult& result = results[indices[b]];
      result.token_ids.push_back(next);
      if (s.request->return_logprobs) result.logprobs.push_back(LogProbability(row, next));
      bool is_stop_id = std::binary_search(stop_ids.begin(), stop_ids.end(), next);
      if (is_stop_id && !s.request->ignore_eos) {
        finish(b, FinishReason::kEndOfSequence);
        continue;
      }
      emit(b, s.stops.Feed(s.decoder.Push(next)));
      if (s.stops.stopped()) {
        finish(b, FinishReason::kStopString);
      } else if (static_cast<int32_t>(result.token_ids.size()) >= s.request->max_new_tokens) {
        finish(b, FinishReason::kLength);
      } else {
        step[b][0] = next;
        step_lengths[b] = 1;
        any_active = true;
      }
    }
    if (!any_active) break;
    T2_ASSIGN_OR_RETURN(logits, model->Forward(step, step_lengths, cache, false, adapters));
  }
  return absl::OkStatus();
}

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
  int64_t context = c.sliding_window > 0 ? std::min(c.sliding_window, c.max_position_embeddings)
                                         : c.max_position_embeddings;
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
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GenerationResult>> Generator::Generate(std::span<const GenerationRequest> requests,
                                                                  const TextCallback& on_text) {
  for (size_t i = 0; i < requests.size(); ++i) {
    if (auto s = ValidateRequest(requests[i]); !s.ok()) return Annotate(s, absl::StrCat("request ", i));
  }
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<GenerationResult> results(requests.size());
  const size_t chunk = static_cast<size_t>(impl_->options.max_batch_size);
  for (size_t first = 0; first < requests.size(); first += chunk) {
    std::vector<size_t> indices(std::min(chunk, requests.size() - first));
    for (size_t k = 0; k < indices.size(); ++k) indices[k] = first + k;
    T2_RETURN_IF_ERROR(impl_->RunChunk(requests, indices, results, on_text));
  }
  return results;
}

absl::Status Generator::AddExpert(const std::string& name, const std::filesystem::path& file,
                                  bool allow_base_mismatch) {
  if (impl_->svf == nullptr) return absl::FailedPreconditionError("AddExpert: this generator was created without SVF");
  std::lock_guard<std::mutex> lock(impl_->mutex);
  T2_ASSIGN_OR_RETURN(auto expert, svf::LoadExpert(file, impl_->svf->decomposition(),
                                                   {.allow_base_mismatch = allow_base_mismatch}));
  return impl_->svf->AddExpert(name, std::move(expert));
}

absl::Status Generator::AddMixture(const std::string& name, const std::vector<std::string>& experts,
                                   const std::vector<double>& alpha, bool per_layer) {
  if (impl_->svf == nullptr) return absl::FailedPreconditionError("AddMixture: this generator was created without SVF");
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<const svf::Expert*> parts;
  for (size_t k = 0; k < experts.size(); ++k) {
    const svf::Expert* e = impl_->svf->Find(experts[k]);
    if (e == nullptr) return absl::NotFoundError(absl::StrCat("mixture '", name, "': expert[", k, "] '", experts[k], "' is not loaded"));
    parts.push_back(e);
  }
  T2_ASSIGN_OR_RETURN(auto mixed, svf::MixExperts(parts, {.alpha = alpha, .per_layer = per_layer},
                                                  static_cast<int>(impl_->model->config().num_hidden_layers)));
  return impl_->svf->AddExpert(name, std::move(mixed));
}

absl::Status Generator::RemoveAdapter(const std::string& name) {
  if (impl_->svf == nullptr) return absl::NotFoundError(absl::StrCat("adapter '", name, "' is not loaded"));
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->svf->Remove(name);
}

Generator::SvfStats Generator::svf_stats() const {
  if (impl_->svf == nullptr) return {};
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return {.compositions = impl_->svf->compositions(),
          .merged_cache_bytes = impl_->svf->merged_cache_bytes(),
          .merged_cache_entries = static_cast<int64_t>(impl_->svf->merged_cache_entries())};
}

std::vector<std::string> Generator::AdapterNames() const {
  if (impl_->svf == nullptr) return {};
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->svf->Names();
}

}  // namespace t2::engine
