// Text generation over a loaded model with continuous batching: requests are submitted at any
// time, join the running batch at the next step (their prompts prefilled together), decode
// with everyone else, and leave as soon as they stop (EOS, a stop string, max_new_tokens,
// cancellation or their deadline), freeing their slot for the next waiting request. Requests
// in one batch may use different SVF experts. This header is free of LibTorch: services and
// tools include it.
//
// Guarantees: a request's greedy output equals what it gets alone; sampling is seeded per
// request. Thread safety: every method may be called from any thread; one scheduler thread
// runs the model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "t2/engine/sampling.h"
#include "t2/model/config.h"
#include "t2/model/device_spec.h"
#include "t2/svf/targets.h"
#include "t2/tokenizer/tokenizer.h"

namespace t2::engine {

// SVF experts (Transformer²). With these set, the generator decomposes the model's target
// matrices once (cached on disk) and requests may name an expert or mixture.
// How a batch whose requests use different experts runs:
//   factored: one batch, each row with its own z (no weight rebuild);
//   merged:   one sub-batch per expert, W' written into the weights for each;
//   auto:     merged when the whole batch shares one expert, else factored.
// A request's result is the same either way (up to float rounding).
enum class SvfMode { kAuto, kMerged, kFactored };
inline constexpr SvfMode kSvfModes[] = {SvfMode::kAuto, SvfMode::kMerged, SvfMode::kFactored};
std::string_view SvfModeName(SvfMode mode);  // "auto", "merged", "factored"

struct SvfOptions {
  svf::TargetSet targets = svf::TargetSet::kMlp;  // matrices experts may adapt
  std::filesystem::path cache_dir;                // SVD cache folder; empty: the model's own folder
  SvfMode mode = SvfMode::kAuto;
  int64_t merged_cache_bytes = int64_t{512} << 20;  // LRU of composed W' sets (merged mode)
  bool verify = false;  // check the decomposition reconstructs W (1e-5 relative) when loaded

  absl::Status Validate() const;
};

struct GeneratorOptions {
  std::filesystem::path model;  // .gguf file or HF checkpoint folder
  model::DeviceSpec device;     // auto: CUDA if available
  model::ComputeDType dtype = model::ComputeDType::kAuto;  // auto: f32 on CPU, bf16 on CUDA
  int32_t cpu_threads = 0;       // 0: LibTorch's default (one per core)
  int32_t max_batch_size = 32;   // sequences decoded together (batch slots)
  int32_t max_queue = 256;       // Submit beyond this many waiting requests: ResourceExhausted
  int64_t max_context = 0;       // cap on prompt + max_new_tokens; 0: the model's context
  // Keys and values of recent prompts (per adapter) kept for reuse by prompts that begin the
  // same way: a shared system prompt or the first pass's classification instructions is then
  // prefilled once. 0 disables. Reused positions equal recomputed ones up to float rounding.
  int64_t prefix_cache_bytes = 0;
  std::optional<SvfOptions> svf;  // unset: no experts

  absl::Status Validate() const;
};

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;     // already tokenised (chat formatting is the caller's)
  int32_t max_new_tokens = 128;        // >= 1
  SamplingParams sampling;
  std::vector<std::string> stop_strings;  // at most kMaxStopStrings, 1..kMaxStopStringBytes each
  bool ignore_eos = false;             // keep going past end-of-sequence tokens (benchmarks)
  bool return_logprobs = false;        // log p(token) under the unmodified model distribution
  std::string adapter;                 // "" = base model; else a name given to AddExpert/AddMixture
};

inline constexpr size_t kMaxStopStrings = 16;
// Longest stop string: every generated token checks each stop string's partial matches against
// the text's tail on the scheduler thread, in time that grows with the square of its length.
inline constexpr size_t kMaxStopStringBytes = 256;

enum class FinishReason { kEndOfSequence, kStopString, kLength };
std::string_view FinishReasonName(FinishReason reason);  // "eos", "stop", "length"

struct GenerationResult {
  std::vector<int32_t> token_ids;  // every generated token, the final EOS included
  std::string text;                // decoded output, special tokens skipped, cut before a stop string
  FinishReason finish_reason = FinishReason::kLength;
  std::vector<float> logprobs;     // one per token when requested
  int64_t prompt_tokens = 0;
  double queue_ms = 0;             // time between submission and the start of its prefill
};

// Called from the generating thread as text becomes safe to emit (never a partial UTF-8
// character, never a possible prefix of a stop string).
using TextCallback = std::function<void(size_t request_index, std::string_view text)>;

// What a submitted request reports, from the scheduler thread. Callbacks must not block
// (hand the data to another thread) and must not call back into the Generator.
struct StreamCallbacks {
  // Once, when the request leaves the queue and its prefill starts.
  std::function<void(double queue_ms)> on_start;
  // The tokens generated since the last call and the text they made safe to emit (may be
  // empty while a multi-byte character or a possible stop string is pending).
  std::function<void(std::string_view text, std::span<const int32_t> tokens, std::span<const float> logprobs)>
      on_tokens;
  // Exactly once: the finished result, or why the request ended early (Cancelled,
  // DeadlineExceeded, Unavailable when the generator shuts down, Internal).
  std::function<void(absl::StatusOr<GenerationResult> result)> on_done;
};

// Lets the submitter cancel a request; its slot is freed at the next step.
class RequestHandle {
 public:
  virtual ~RequestHandle() = default;
  virtual void Cancel() = 0;
};

// Log-likelihoods of completions after a shared prompt (classification by label, CEM).
struct ScoreRequest {
  std::vector<int32_t> prompt_ids;
  std::vector<std::vector<int32_t>> completions;  // each non-empty
  std::string adapter;                            // as GenerationRequest::adapter
  // Scores each completion only up to its first own token: the beginning all completions
  // share, then the token where it departs from the others (which must differ pairwise). The
  // whole request is then one prefill; the best score picks the completion greedy decoding
  // constrained to the completions would begin. For choosing among labels.
  bool first_token_only = false;
};
struct CompletionScore {
  double logprob = 0;  // sum of log p(token) over the scored tokens
  int32_t tokens = 0;  // tokens scored
};

// How the scheduler has run one adapter ("" = the base model) since it was added.
struct AdapterUsage {
  int64_t compositions = 0;          // W' sets composed for it (merged form, LRU misses)
  double composition_seconds = 0;    // time those took
  int64_t factored_rows = 0;         // sequences in forwards that ran it factored
  int64_t merged_rows = 0;           // ... with its W' written into the weights
};

// A finished request is counted (and its slot shown free) before its on_done runs.
struct SchedulerStats {
  int32_t active = 0;  // sequences in the batch
  int32_t queued = 0;  // requests and Score calls waiting for the scheduler
  int32_t slots = 0;      // the most sequences decoded together
  int32_t max_queue = 0;  // queued requests beyond free slots that Submit accepts
  int64_t kv_cache_bytes = 0;
  int64_t kv_cache_limit_bytes = 0;  // the cache at every slot and the longest context
  int64_t steps = 0;            // decode steps run
  int64_t step_sequences = 0;   // sequences over those steps (their mean batch size: / steps)
  int64_t requests_done = 0;    // finished (any reason)
  // Prompt beginnings reused from the prefix cache (GeneratorOptions::prefix_cache_bytes).
  int64_t prefix_cache_bytes = 0;
  int64_t prefix_cache_entries = 0;
  int64_t prefix_lookups = 0;        // prompts looked up while the cache is on
  int64_t prefix_hits = 0;           // prompts (generation or Score) that reused one
  int64_t prefix_reused_tokens = 0;  // prompt positions copied instead of computed
  std::map<std::string, AdapterUsage> adapters;  // with SVF: every adapter a forward ran
};

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
  // NotFound if no adapter has that name; FailedPrecondition while a request uses it.
  absl::Status RemoveAdapter(const std::string& name);
  std::vector<std::string> AdapterNames() const;

  // What the merged form has cost so far (zeros without SVF).
  struct SvfStats {
    int64_t compositions = 0;         // W' sets composed (LRU misses)
    int64_t merged_cache_bytes = 0;   // held by the LRU of composed sets, <= the budget
    int64_t merged_cache_entries = 0;
  };
  SvfStats svf_stats() const;

  // Queues one request for the running batch. Validates it first (ValidateRequest); a full
  // queue is ResourceExhausted. A request still queued at `deadline` is dropped before its
  // prefill (DeadlineExceeded); one running at its deadline stops there.
  absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(GenerationRequest request, StreamCallbacks callbacks,
                                                        absl::Time deadline = absl::InfiniteFuture());

  // Scores completions in one batched prefill, between decode steps. Blocks the caller. It
  // waits in line with the generation requests: past max_queue it is ResourceExhausted, and
  // while it waits it ends with DeadlineExceeded at `deadline` or Cancelled once `cancelled`
  // (polled) returns true. Once its prefill has begun it runs to the end.
  absl::StatusOr<std::vector<CompletionScore>> Score(
      const ScoreRequest& request, absl::Time deadline = absl::InfiniteFuture(),
      const std::function<bool()>& cancelled = nullptr);

  // The largest prompt + max_new_tokens a request may ask for.
  int64_t context_limit() const;
  const GeneratorOptions& options() const;
  SchedulerStats scheduler_stats() const;
  // The SVF base fingerprint of the loaded weights ("" without SVF).
  std::string base_fingerprint() const;
  // Number of singular values of each target matrix, by HF name (empty without SVF).
  std::map<std::string, int64_t> target_ranks() const;

  // Stops accepting work (Submit: Unavailable), lets running and queued requests finish.
  // Blocks until they have, or until `deadline`, after which the rest end with Unavailable.
  void Drain(absl::Time deadline);

  // Runs every request to completion; results are in request order. Validates all requests
  // first and runs none if any is invalid (the error names its index). Ignores max_queue.
  absl::StatusOr<std::vector<GenerationResult>> Generate(std::span<const GenerationRequest> requests,
                                                         const TextCallback& on_text = nullptr);

 private:
  friend struct TrainingAccess;  // t2/engine/model_access.h: the trainer's way to the model
  struct Impl;
  explicit Generator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace t2::engine
