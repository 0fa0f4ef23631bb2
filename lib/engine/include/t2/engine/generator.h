// Batched text generation over a loaded model: prefill prompts of different lengths together,
// then decode every request in lock-step until each stops (EOS, a stop string, or its
// max_new_tokens). This header is free of LibTorch: services and tools include it.
//
// Guarantees: a request's greedy output equals what it gets alone; sampling is seeded per
// request. Thread safety: Generate() calls are serialised internally (one batch at a time).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/engine/sampling.h"
#include "t2/model/config.h"
#include "t2/tokenizer/tokenizer.h"

namespace t2::engine {

// SVF experts (Transformer²). With these set, the generator decomposes the model's target
// matrices once (cached on disk) and requests may name an expert or mixture.
struct SvfOptions {
  std::string targets = "mlp";    // matrices experts may adapt: mlp | attn | all
  std::filesystem::path cache_dir;  // SVD cache folder; empty: the model's own folder
  // How a batch whose requests use different experts runs:
  //   factored: one batch, each row with its own z (no weight rebuild);
  //   merged:   one sub-batch per expert, W' written into the weights for each;
  //   auto:     merged when the whole batch shares one expert, else factored.
  // A request's result is the same either way (up to float rounding).
  std::string mode = "auto";
  int64_t merged_cache_bytes = int64_t{512} << 20;  // LRU of composed W' sets (merged mode)
  bool verify = false;  // check the decomposition reconstructs W (1e-5 relative) when loaded

  absl::Status Validate() const;
};

struct GeneratorOptions {
  std::filesystem::path model;  // .gguf file or HF checkpoint folder
  std::string device = "auto";  // see t2::model::LoadOptions
  std::string dtype = "auto";
  int32_t cpu_threads = 0;       // 0: LibTorch's default (one per core)
  int32_t max_batch_size = 32;   // requests decoded together; larger inputs run in chunks
  std::optional<SvfOptions> svf;  // unset: no experts

  absl::Status Validate() const;
};

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;     // already tokenised (chat formatting is the caller's)
  int32_t max_new_tokens = 128;        // >= 1
  SamplingParams sampling;
  std::vector<std::string> stop_strings;  // at most kMaxStopStrings, each non-empty
  bool ignore_eos = false;             // keep going past end-of-sequence tokens (benchmarks)
  bool return_logprobs = false;        // log p(token) under the unmodified model distribution
  std::string adapter;                 // "" = base model; else a name given to AddExpert/AddMixture
};

inline constexpr size_t kMaxStopStrings = 16;

enum class FinishReason { kEndOfSequence, kStopString, kLength };
std::string_view FinishReasonName(FinishReason reason);  // "eos", "stop", "length"

struct GenerationResult {
  std::vector<int32_t> token_ids;  // every generated token, the final EOS included
  std::string text;                // decoded output, special tokens skipped, cut before a stop string
  FinishReason finish_reason = FinishReason::kLength;
  std::vector<float> logprobs;     // one per token when requested
  int64_t prompt_tokens = 0;
};

// Called from the generating thread as text becomes safe to emit (never a partial UTF-8
// character, never a possible prefix of a stop string).
using TextCallback = std::function<void(size_t request_index, std::string_view text)>;

class Generator {
 public:
  static absl::StatusOr<std::unique_ptr<Generator>> Create(const GeneratorOptions& options);
  ~Generator();

  const tokenizer::Tokenizer& tokenizer() const;
  const model::ModelConfig& config() const;
  std::string device_name() const;
  std::string dtype_name() const;

  // InvalidArgumentError naming the field: empty prompt, id outside the vocabulary,
  // max_new_tokens < 1, prompt + max_new_tokens over the context, bad sampling values, too
  // many or empty stop strings. NotFoundError for an adapter that is not loaded.
  absl::Status ValidateRequest(const GenerationRequest& request) const;

  // SVF experts (need GeneratorOptions::svf). An expert file is validated against the
  // model's decomposition (see svf::ValidateExpert); `allow_base_mismatch` accepts one made
  // for another base model of the same shapes. A name in use is replaced. Mixtures combine
  // registered experts: alpha has K values, or num_layers × K when per_layer.
  absl::Status AddExpert(const std::string& name, const std::filesystem::path& file,
                         bool allow_base_mismatch = false);
  absl::Status AddMixture(const std::string& name, const std::vector<std::string>& experts,
                          const std::vector<double>& alpha, bool per_layer = false);
  // NotFound if no adapter has that name.
  absl::Status RemoveAdapter(const std::string& name);
  std::vector<std::string> AdapterNames() const;

  // What the merged form has cost so far (zeros without SVF).
  struct SvfStats {
    int64_t compositions = 0;         // W' sets composed (LRU misses)
    int64_t merged_cache_bytes = 0;   // held by the LRU of composed sets, <= the budget
    int64_t merged_cache_entries = 0;
  };
  SvfStats svf_stats() const;

  // Runs every request to completion; results are in request order. Validates all requests
  // first and runs none if any is invalid (the error names its index).
  absl::StatusOr<std::vector<GenerationResult>> Generate(std::span<const GenerationRequest> requests,
                                                         const TextCallback& on_text = nullptr);

 private:
  struct Impl;
  explicit Generator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace t2::engine
