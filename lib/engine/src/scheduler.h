// Continuous batching: the one thread that runs the model. Requests wait in a FIFO queue; at
// each step the scheduler admits as many as there are free slots (prefilling them together
// next to the running sequences), runs one decode step over every live sequence, streams
// what each produced, and frees the slots of those that stopped, were cancelled or passed
// their deadline. Score jobs run between steps.
//
// Live sequences always occupy KV rows [0, n): a finished row is filled by moving the last
// one into it, so each step computes exactly the live rows (model::KvCache::Slice).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model_lock.h"
#include "prefix_cache.h"
#include "svf_adapters.h"
#include "t2/common/heap_release.h"
#include "t2/engine/generator.h"
#include "t2/model/llama.h"

namespace t2::engine {

// How many leading tokens all `completions` (each non-empty) share, leaving each at least one
// token of its own.
int64_t SharedCompletionTokens(std::span<const std::vector<int32_t>> completions);

class Scheduler {
 public:
  struct Config {
    model::LlamaModel* model = nullptr;
    const tokenizer::Tokenizer* tokenizer = nullptr;
    SvfAdapters* svf = nullptr;        // null without SVF
    ModelLock* model_lock = nullptr;   // held while the model or the SVF state is used
    int32_t slots = 32;
    int32_t max_queue = 256;
    bool merged_only = false;  // SvfOptions::mode == "merged": a batch never mixes experts
    int64_t prefix_cache_bytes = 0;  // GeneratorOptions::prefix_cache_bytes
  };
  explicit Scheduler(const Config& config);
  ~Scheduler();  // ends every request still queued or running with Unavailable

  // The request must already be validated. `ignore_queue_cap`: for Generator::Generate,
  // whose caller waits for everything it submitted.
  absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(GenerationRequest request, StreamCallbacks callbacks,
                                                        absl::Time deadline, bool ignore_queue_cap);
  // Generator::Score's promise: queued with the requests (max_queue), dropped at `deadline` or
  // once `cancelled` returns true while it waits.
  absl::StatusOr<std::vector<CompletionScore>> Score(const ScoreRequest& request,
                                                     absl::Time deadline,
                                                     const std::function<bool()>& cancelled);
  SchedulerStats stats() const;
  void Drain(absl::Time deadline);
  // Composed per-row adapters and prompt prefixes are cached by adapter name; an adapter
  // added, replaced or removed under `name` must drop them. Call with the model lock held.
  void InvalidateAdapter(const std::string& name);
  // Whether a queued or running request uses adapter `name`. Model lock held.
  bool InUse(const std::string& name) const;

 private:
  struct Entry;
  struct Sequence;
  struct ScoreJob;

  void Loop();
  // One iteration: admit, prefill, decode, compact. Model lock held.
  void Step(const std::vector<std::shared_ptr<Entry>>& admitted);
  void Admit(std::vector<std::shared_ptr<Entry>>& out);  // queue mutex held
  // What counts against max_queue: queued requests and Score jobs beyond the free slots.
  // Queue mutex held.
  int64_t WaitingBeyondFreeSlots() const;
  // After an exception escaped a step (out of memory, a library error): every running request
  // and every one just admitted ends with Internal, and the KV cache is dropped (its rows may
  // be half-written), so that the worker goes on serving the next ones. Model lock held.
  void RecoverFromFault(const std::vector<std::shared_ptr<Entry>>& admitted,
                        const std::string& what);
  // At least `rows` rows of `capacity` positions; rows [0, keep) survive a reallocation.
  absl::Status EnsureCache(int64_t rows, int64_t capacity, int64_t keep);
  // The most positions a KV row may hold (the model's context or sliding window).
  int64_t CacheLimit() const;
  // Prefills the rows admitted this step, [first, live_.size()), reusing cached prompt
  // beginnings. On an error those rows end with it.
  void PrefillAdmitted(int64_t first);
  // What PrefillAdmitted reuses and computes: per admitted row, the beginning the prefix cache
  // holds; the positions every cache row needs; the padded number of new tokens per row.
  struct PrefillPlan {
    std::vector<PrefixCache::Match> reuse;
    int64_t capacity = 0;
    int64_t widest_rest = 0;
  };
  PrefillPlan PlanPrefill(int64_t first);  // counts the lookups, marks what it reuses as recent
  // Ends live rows [from, n) with `status` (a failed model step) and removes them.
  void FailFrom(const absl::Status& status, size_t from);
  // Copies the prefix cache's counters where stats() can read them.
  void PublishPrefixStats();
  // Adapters for a forward over rows with these adapter names: merged weights (nullopt) or
  // per-row factored ones.
  // `one_pass`: for a Score, which runs one forward (SvfAdapters::RunFactored).
  absl::StatusOr<std::optional<model::RowAdapters>> PrepareAdapters(const std::vector<std::string>& names,
                                                                    bool one_pass = false);
  // Samples row `row`'s next token from its logits; returns false if the sequence ended.
  bool Consume(Sequence& seq, const float* logits);
  void Finish(Sequence& seq, absl::StatusOr<FinishReason> reason);
  void RemoveFinished();
  absl::StatusOr<std::vector<CompletionScore>> RunScore(const ScoreRequest& request);
  // RunScore's context: the prompt (its cached beginning reused) and the completions' `shared`
  // beginning, prefilled into row 0 of `cache`. The shared tokens' log-probability, and the
  // distribution of each completion's first own token.
  struct ScoredContext {
    double shared_logprob = 0;
    std::vector<float> next;
  };
  absl::StatusOr<ScoredContext> ScoreContext(const ScoreRequest& request,
                                             const std::vector<int32_t>& context, int64_t shared,
                                             model::KvCache& cache,
                                             const std::optional<model::RowAdapters>& first_row);
  // How RunScore runs the completions' own tails: after `shared` tokens common to all, at most
  // `longest` more, `chunk` completions at a time, each row starting from a `context`-token
  // prefix.
  struct ScoreTailPlan {
    int64_t shared = 0, longest = 0, chunk = 1, context = 0;
  };
  // Adds each completion's tail to its log-probability in `out`. Row 0 of `cache` holds the
  // context (restored from `context_copy` between chunks).
  absl::Status ScoreTails(const ScoreRequest& request, const ScoreTailPlan& plan,
                          model::KvCache& cache, const model::KvCache& context_copy,
                          const std::optional<model::RowAdapters>& adapters,
                          std::vector<CompletionScore>& out);
  // Runs a waiting Score (unless its caller gave up) and hands its caller the result. Model
  // lock held.
  void RunScoreJob(ScoreJob& job);
  // The caller gave up waiting: the job leaves the line.
  void Abandon(const std::shared_ptr<ScoreJob>& job);

  Config config_;
  int64_t vocab_ = 0;

  // Owned by the scheduler thread (under the model lock).
  model::KvCache cache_;
  std::vector<std::unique_ptr<Sequence>> live_;  // live_[i] is in KV row i
  std::optional<std::vector<std::string>> factored_names_;
  model::RowAdapters factored_;
  PrefixCache prefix_;
  // At most one release every few seconds: it walks every malloc arena under its lock.
  HeapReleaser heap_releaser_{absl::Seconds(5)};

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;        // wakes the loop
  std::condition_variable idle_cv_;   // wakes Drain
  std::deque<std::shared_ptr<Entry>> queue_;
  std::deque<std::shared_ptr<ScoreJob>> score_jobs_;  // run between steps, in order
  int32_t active_ = 0;
  int64_t kv_bytes_ = 0;
  int64_t kv_limit_bytes_ = 0;  // set once, before the thread starts
  PrefixCache::Stats prefix_stats_;
  int64_t steps_ = 0;
  int64_t step_sequences_ = 0;
  int64_t done_ = 0;
  std::map<std::string, AdapterUsage> adapter_usage_;
  bool draining_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace t2::engine
