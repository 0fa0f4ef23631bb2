#include "scheduler.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "t2/common/fault_point.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/engine/stop_strings.h"

namespace t2::engine {

namespace {

// KV capacity grows in steps of this many positions, so that a stream of slightly longer
// requests does not reallocate every time.
constexpr int64_t kCapacityQuantum = 256;
// Score's all-position logits ([rows, T, vocab] float32) are computed in chunks of rows that
// keep them under this size.
constexpr int64_t kScoreLogitBytes = int64_t{256} << 20;

// Prompts shorter than this are not kept in the prefix cache, and shorter matches are not
// reused: copying a handful of positions saves less than the bookkeeping costs.
constexpr int64_t kMinPrefixTokens = 16;

double MillisSince(absl::Time t) { return absl::ToDoubleMilliseconds(absl::Now() - t); }

}  // namespace

struct Scheduler::Entry : RequestHandle {
  GenerationRequest request;
  StreamCallbacks callbacks;
  absl::Time deadline;
  absl::Time submitted;
  std::atomic<bool> cancelled{false};
  void Cancel() override { cancelled = true; }
};

// A request in the batch: its sampler, streaming decoder and stop matcher.
struct Scheduler::Sequence {
  Sequence(std::shared_ptr<Entry> e, const tokenizer::Tokenizer& tok)
      : entry(std::move(e)),
        sampler(entry->request.sampling),
        decoder(tok, /*skip_special=*/true),
        stops(entry->request.stop_strings) {}
  std::shared_ptr<Entry> entry;
  Sampler sampler;
  tokenizer::StreamDecoder decoder;
  StopStringMatcher stops;
  GenerationResult result;
  int32_t next_token = -1;  // fed to the model at the next decode step
  bool done = false;
};

Scheduler::Scheduler(const Config& config)
    : config_(config),
      vocab_(config.model->config().vocab_size),
      prefix_(config.prefix_cache_bytes, kMinPrefixTokens) {
  // What one position of one row costs, from a cache of that size (keys and values of every
  // layer in the model's dtype): the limit is every slot at the longest context.
  if (auto one = config_.model->NewCache(1, 1); one.ok()) {
    kv_limit_bytes_ = one->bytes() * config_.slots * CacheLimit();
  }
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

absl::StatusOr<std::shared_ptr<RequestHandle>> Scheduler::Submit(GenerationRequest request, StreamCallbacks callbacks,
                                                                 absl::Time deadline, bool ignore_queue_cap) {
  auto entry = std::make_shared<Entry>();
  entry->request = std::move(request);
  entry->callbacks = std::move(callbacks);
  entry->deadline = deadline;
  entry->submitted = absl::Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_ || stopping_) return absl::UnavailableError("the generator is shutting down");
    // Requests that free slots will take at the next step are not waiting for capacity;
    // only those beyond them count against max_queue (a waiting Score counts as a request).
    if (const int64_t waiting = WaitingBeyondFreeSlots();
        !ignore_queue_cap && waiting >= config_.max_queue) {
      return absl::ResourceExhaustedError(absl::StrCat("queue full: ", waiting,
                                                       " requests waiting for a slot (max_queue ",
                                                       config_.max_queue, ")"));
    }
    queue_.push_back(entry);
  }
  cv_.notify_all();
  return entry;
}

// A Score waiting for the scheduler thread. Shared by the caller and the task, because a caller
// that gives up (deadline, cancellation) returns before the task runs.
struct Scheduler::ScoreJob {
  ScoreRequest request;
  absl::Time deadline;
  std::atomic<bool> abandoned{false};  // the caller has returned; the task skips the work
  std::mutex mu;
  std::condition_variable cv;
  std::optional<absl::StatusOr<std::vector<CompletionScore>>> out;

  void Set(absl::StatusOr<std::vector<CompletionScore>> result) {
    std::lock_guard<std::mutex> l(mu);
    out = std::move(result);
    cv.notify_all();
  }
};

int64_t Scheduler::WaitingBeyondFreeSlots() const {
  const int64_t free_slots = std::max<int64_t>(0, config_.slots - active_);
  return std::max<int64_t>(0,
                           static_cast<int64_t>(queue_.size() + score_jobs_.size()) - free_slots);
}

absl::StatusOr<std::vector<CompletionScore>> Scheduler::Score(
    const ScoreRequest& request, absl::Time deadline, const std::function<bool()>& cancelled) {
  if (absl::Now() >= deadline) return absl::DeadlineExceededError("deadline passed before scoring");
  auto job = std::make_shared<ScoreJob>();
  job->request = request;
  job->deadline = deadline;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_ || stopping_) return absl::UnavailableError("the generator is shutting down");
    // A Score waits with the generation requests and counts against the same cap (as if it
    // took a free slot for its one prefill).
    if (const int64_t waiting = WaitingBeyondFreeSlots(); waiting >= config_.max_queue) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "queue full: ", waiting, " requests waiting (max_queue ", config_.max_queue, ")"));
    }
    score_jobs_.push_back(job);
  }
  cv_.notify_all();
  // Cancellation is a caller's predicate (a gRPC context's IsCancelled), so it is polled.
  constexpr absl::Duration kCancelPoll = absl::Milliseconds(20);
  std::unique_lock<std::mutex> l(job->mu);
  while (!job->out.has_value()) {
    const absl::Time now = absl::Now();
    if (now >= deadline || (cancelled && cancelled())) {
      l.unlock();
      Abandon(job);
      if (now >= deadline)
        return absl::DeadlineExceededError("deadline passed while queued for scoring");
      return absl::CancelledError("cancelled while queued for scoring");
    }
    const absl::Time wake = cancelled ? std::min(deadline, now + kCancelPoll) : deadline;
    if (wake == absl::InfiniteFuture()) {
      job->cv.wait(l);  // time_point::max() would overflow inside wait_until
    } else {
      job->cv.wait_until(l, absl::ToChronoTime(wake));
    }
  }
  return std::move(*job->out);
}

void Scheduler::Abandon(const std::shared_ptr<ScoreJob>& job) {
  job->abandoned = true;
  // Out of the line at once, so that it no longer counts against max_queue.
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = std::find(score_jobs_.begin(), score_jobs_.end(), job); it != score_jobs_.end()) {
    score_jobs_.erase(it);
  }
}

void Scheduler::RunScoreJob(ScoreJob& job) {
  if (job.abandoned) return;
  if (absl::Now() >= job.deadline) {
    job.Set(absl::DeadlineExceededError("deadline passed while queued for scoring"));
    return;
  }
  absl::StatusOr<std::vector<CompletionScore>> result;
  try {
    result = RunScore(job.request);
  } catch (const std::exception& e) {
    // The caller waits for `out`: a fault must still set it.
    LogError(absl::StrCat("scoring failed: ", e.what()));
    result = absl::InternalError("scoring failed on the worker");
  }
  job.Set(std::move(result));
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {.active = active_,
          .queued = static_cast<int32_t>(queue_.size() + score_jobs_.size()),
          .slots = config_.slots,
          .max_queue = config_.max_queue,
          .kv_cache_bytes = kv_bytes_,
          .kv_cache_limit_bytes = kv_limit_bytes_,
          .steps = steps_,
          .step_sequences = step_sequences_,
          .requests_done = done_,
          .prefix_cache_bytes = prefix_stats_.bytes,
          .prefix_cache_entries = prefix_stats_.entries,
          .prefix_lookups = prefix_stats_.lookups,
          .prefix_hits = prefix_stats_.hits,
          .prefix_reused_tokens = prefix_stats_.reused_tokens,
          .adapters = adapter_usage_};
}

bool Scheduler::InUse(const std::string& name) const {
  for (const auto& seq : live_) {
    if (seq->entry->request.adapter == name) return true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& e : queue_) {
    if (e->request.adapter == name) return true;
  }
  return false;
}

void Scheduler::Drain(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  draining_ = true;
  idle_cv_.wait_until(lock, absl::ToChronoTime(deadline),
                      [&] { return queue_.empty() && active_ == 0 && score_jobs_.empty(); });
  // Whatever is left ends with Unavailable when the destructor stops the loop.
}

void Scheduler::Admit(std::vector<std::shared_ptr<Entry>>& out) {
  const absl::Time now = absl::Now();
  int64_t free_slots = config_.slots - active_;
  // With merged weights only, a batch holds one expert: the running one, or the first
  // waiting request's when the batch is empty. Others wait their turn (in order).
  std::optional<std::string> only;
  if (config_.merged_only && config_.svf != nullptr) {
    if (!live_.empty()) only = live_.front()->entry->request.adapter;
  }
  // Every waiting request is checked, not only those that get a slot now: a dropped one
  // must not hold a queue place (or its caller) until a slot frees.
  for (auto it = queue_.begin(); it != queue_.end();) {
    Entry& e = **it;
    // Dropped before any work: cancelled while waiting, or too late to be of use.
    if (e.cancelled || now >= e.deadline) {
      auto dropped = *it;
      it = queue_.erase(it);
      ++done_;
      if (dropped->callbacks.on_done) {
        dropped->callbacks.on_done(dropped->cancelled ? absl::CancelledError("cancelled while queued")
                                                      : absl::DeadlineExceededError("deadline passed while queued"));
      }
      continue;
    }
    if (free_slots == 0 || (only.has_value() && e.request.adapter != *only)) {
      ++it;
      continue;
    }
    if (config_.merged_only && !only.has_value()) only = e.request.adapter;
    out.push_back(*it);
    it = queue_.erase(it);
    --free_slots;
  }
}

void Scheduler::Loop() {
  // OpenMP's thread count, and MKL's, are per thread: what at::set_num_threads set in the
  // thread that made the generator does not reach this one, where every forward runs. Without
  // this a worker's --threads bounded LibTorch's own loops only, while MKL's matmuls took one
  // thread per core.
  at::init_num_threads();
  while (true) {
    std::vector<std::shared_ptr<Entry>> admitted;
    std::deque<std::shared_ptr<ScoreJob>> score_jobs;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock,
               [&] { return stopping_ || !queue_.empty() || !score_jobs_.empty() || active_ > 0; });
      if (stopping_) break;
      score_jobs.swap(score_jobs_);
      Admit(admitted);
      active_ += static_cast<int32_t>(admitted.size());
    }
    {
      config_.model_lock->LockForStep();
      std::lock_guard<ModelLock> held(*config_.model_lock, std::adopt_lock);
      for (auto& job : score_jobs) RunScoreJob(*job);
      try {
        Step(admitted);
      } catch (const std::exception& e) {
        RecoverFromFault(admitted, e.what());
      }
    }
    bool idle = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      idle = queue_.empty() && active_ == 0 && score_jobs_.empty();
      if (idle) idle_cv_.notify_all();
    }
    // Gone idle: the step's freed tensors go back to the system, not to RSS (heap_release.h).
    if (idle) heap_releaser_.MaybeRelease();
  }
  // Shutting down: everything still waiting or running ends with Unavailable.
  std::deque<std::shared_ptr<Entry>> queued;
  std::deque<std::shared_ptr<ScoreJob>> score_jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued.swap(queue_);
    score_jobs.swap(score_jobs_);
  }
  std::lock_guard<ModelLock> held(*config_.model_lock);
  for (auto& job : score_jobs) RunScoreJob(*job);  // Score callers are waiting; let them finish
  for (auto& e : queued) {
    if (e->callbacks.on_done) e->callbacks.on_done(absl::UnavailableError("the generator shut down"));
  }
  for (auto& seq : live_) {
    if (!seq->done) Finish(*seq, absl::UnavailableError("the generator shut down"));
  }
  live_.clear();
}

void Scheduler::RecoverFromFault(const std::vector<std::shared_ptr<Entry>>& admitted,
                                 const std::string& what) {
  LogError(
      absl::StrCat("generation step failed, ", live_.size(), " running requests ended: ", what));
  const absl::Status failed = absl::InternalError("generation failed on the worker");
  for (auto& e : admitted) {
    const bool running =
        std::any_of(live_.begin(), live_.end(), [&](const auto& seq) { return seq->entry == e; });
    if (running) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --active_;
      ++done_;
    }
    if (e->callbacks.on_done) e->callbacks.on_done(failed);
  }
  for (auto& seq : live_) {
    if (!seq->done) Finish(*seq, failed);
  }
  live_.clear();
  factored_names_.reset();
  std::lock_guard<std::mutex> lock(mu_);
  cache_ = model::KvCache();
  kv_bytes_ = 0;
}

int64_t Scheduler::CacheLimit() const {
  const auto& c = config_.model->config();
  return c.sliding_window > 0 ? std::min(c.sliding_window, c.max_position_embeddings) : c.max_position_embeddings;
}

absl::Status Scheduler::EnsureCache(int64_t rows, int64_t capacity, int64_t keep) {
  if (cache_.rows() >= rows && cache_.capacity() >= capacity) return absl::OkStatus();
  const int64_t limit = CacheLimit();
  int64_t new_rows = std::min<int64_t>(config_.slots, std::max({rows, 2 * cache_.rows(), int64_t{1}}));
  int64_t new_capacity = std::max(capacity, cache_.capacity());
  new_capacity = std::min(limit, (new_capacity + kCapacityQuantum - 1) / kCapacityQuantum * kCapacityQuantum);
  T2_ASSIGN_OR_RETURN(model::KvCache bigger, config_.model->NewCache(new_rows, new_capacity));
  if (keep > 0) bigger.CopyRowsFrom(cache_, keep);
  cache_ = std::move(bigger);
  std::lock_guard<std::mutex> lock(mu_);
  kv_bytes_ = cache_.bytes();
  return absl::OkStatus();
}

absl::StatusOr<std::optional<model::RowAdapters>> Scheduler::PrepareAdapters(const std::vector<std::string>& names,
                                                                              bool one_pass) {
  if (config_.svf == nullptr) return std::nullopt;
  const bool factored = config_.svf->RunFactored(names, one_pass);
  {
    // Once per forward: rows of one adapter usually sit together (a merged batch is all one),
    // so each run of equal names costs one map lookup, not one per row.
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < names.size();) {
      size_t end = i + 1;
      while (end < names.size() && names[end] == names[i]) ++end;
      AdapterUsage& usage = adapter_usage_[names[i]];
      (factored ? usage.factored_rows : usage.merged_rows) += static_cast<int64_t>(end - i);
      i = end;
    }
  }
  if (!factored) {
    const std::string& name = names.empty() ? std::string() : names.front();
    const int64_t composed_before = config_.svf->compositions();
    const absl::Time start = absl::Now();
    T2_RETURN_IF_ERROR(config_.svf->UseMerged(name));
    if (config_.svf->compositions() != composed_before) {
      std::lock_guard<std::mutex> lock(mu_);
      AdapterUsage& usage = adapter_usage_[name];
      ++usage.compositions;
      usage.composition_seconds += absl::ToDoubleSeconds(absl::Now() - start);
    }
    return std::nullopt;
  }
  if (!factored_names_.has_value() || *factored_names_ != names) {
    factored_names_.reset();
    T2_ASSIGN_OR_RETURN(factored_, config_.svf->Factored(names));
    factored_names_ = names;
  } else {
    // A Score job may have merged an expert in since; the factored form needs the base.
    T2_RETURN_IF_ERROR(config_.svf->UseMerged(""));
  }
  return factored_;
}

namespace {
// Rows [first, first + count) of per-row adapters.
model::RowAdapters SliceAdapters(const model::RowAdapters& all, int64_t first, int64_t count) {
  model::RowAdapters out;
  for (const auto& [name, f] : all.matrices) {
    out.matrices[name] = {f.u, f.vt, f.scale.narrow(0, first, count)};
  }
  out.adapted.assign(all.adapted.begin() + first, all.adapted.begin() + first + count);
  return out;
}
}  // namespace

void Scheduler::Finish(Sequence& seq, absl::StatusOr<FinishReason> reason) {
  seq.done = true;
  {
    // Counted before the callbacks run, so that a caller woken by on_done sees the slot free.
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
    ++done_;
  }
  auto& cb = seq.entry->callbacks;
  if (!reason.ok()) {
    if (cb.on_done) cb.on_done(reason.status());
    return;
  }
  seq.result.finish_reason = *reason;
  if (*reason != FinishReason::kStopString) {
    std::string tail = seq.stops.Feed(seq.decoder.Finish());
    tail += seq.stops.Flush();
    if (!tail.empty()) {
      seq.result.text += tail;
      if (cb.on_tokens) cb.on_tokens(tail, {}, {});
    }
  }
  if (cb.on_done) cb.on_done(std::move(seq.result));
}

bool Scheduler::Consume(Sequence& seq, const float* row_logits) {
  const GenerationRequest& r = seq.entry->request;
  std::span<const float> row(row_logits, static_cast<size_t>(vocab_));
  const int32_t next = seq.sampler.Sample(row);
  seq.result.token_ids.push_back(next);
  float logprob = 0;
  if (r.return_logprobs) {
    logprob = LogProbability(row, next);
    seq.result.logprobs.push_back(logprob);
  }
  const auto& stop_ids = config_.tokenizer->special().stop_ids;
  auto& cb = seq.entry->callbacks;
  const int32_t token[1] = {next};
  const float lp[1] = {logprob};
  std::span<const float> lps = r.return_logprobs ? std::span<const float>(lp, 1) : std::span<const float>();
  if (std::binary_search(stop_ids.begin(), stop_ids.end(), next) && !r.ignore_eos) {
    if (cb.on_tokens) cb.on_tokens("", token, lps);
    Finish(seq, FinishReason::kEndOfSequence);
    return false;
  }
  std::string text = seq.stops.Feed(seq.decoder.Push(next));
  seq.result.text += text;
  if (cb.on_tokens) cb.on_tokens(text, token, lps);
  if (seq.stops.stopped()) {
    Finish(seq, FinishReason::kStopString);
    return false;
  }
  if (static_cast<int32_t>(seq.result.token_ids.size()) >= r.max_new_tokens) {
    Finish(seq, FinishReason::kLength);
    return false;
  }
  seq.next_token = next;
  return true;
}

void Scheduler::RemoveFinished() {
  int64_t removed = 0;
  for (int64_t i = static_cast<int64_t>(live_.size()) - 1; i >= 0; --i) {
    if (!live_[i]->done) continue;
    const int64_t last = static_cast<int64_t>(live_.size()) - 1;
    if (i != last) {
      cache_.MoveRow(last, i);
      live_[i] = std::move(live_[last]);
    } else {
      cache_.ResetRow(i);
    }
    live_.pop_back();
    ++removed;
  }
  if (removed == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (live_.empty() && queue_.empty()) {
    // Idle: give the KV memory back (a burst of long requests must not pin it forever).
    cache_ = model::KvCache();
    kv_bytes_ = 0;
  }
}

void Scheduler::FailFrom(const absl::Status& status, size_t from) {
  LogError(absl::StrCat("generation step failed: ", status.ToString()));
  for (size_t i = from; i < live_.size(); ++i) {
    if (!live_[i]->done) Finish(*live_[i], status);
  }
  RemoveFinished();
}

Scheduler::PrefillPlan Scheduler::PlanPrefill(int64_t first) {
  const int64_t count = static_cast<int64_t>(live_.size()) - first;
  PrefillPlan plan{.reuse = std::vector<PrefixCache::Match>(count)};
  for (const auto& seq : live_) {
    const auto& r = seq->entry->request;
    plan.capacity = std::max<int64_t>(plan.capacity, r.prompt_ids.size() + r.max_new_tokens);
  }
  int64_t deepest = 0, widest = 0;
  for (int64_t b = 0; b < count; ++b) {
    const auto& r = live_[first + b]->entry->request;
    plan.reuse[b] = prefix_.Find(r.adapter, r.prompt_ids);
    widest = std::max<int64_t>(widest, r.prompt_ids.size());
    plan.widest_rest =
        std::max<int64_t>(plan.widest_rest, r.prompt_ids.size() - plan.reuse[b].length);
    deepest = std::max(deepest, plan.reuse[b].length);
  }
  // One prefill gives every row the same number of (padded) steps, so a row whose reused
  // beginning is long needs room for it plus the widest remainder. Near the context limit
  // that may not fit: then everything is computed.
  if (deepest + plan.widest_rest > CacheLimit()) {
    std::fill(plan.reuse.begin(), plan.reuse.end(), PrefixCache::Match{});
    plan.widest_rest = widest;
    deepest = 0;
  }
  plan.capacity = std::max(plan.capacity, deepest + plan.widest_rest);
  return plan;
}

void Scheduler::PrefillAdmitted(int64_t first) {
  const int64_t count = static_cast<int64_t>(live_.size()) - first;
  // Prompt beginnings computed before (a shared system prompt, the first pass's fixed
  // instructions) are copied from the prefix cache; only the rest of each prompt runs.
  const PrefillPlan plan = PlanPrefill(first);
  if (auto s = EnsureCache(first + count, plan.capacity, first); !s.ok()) return FailFrom(s, first);
  for (int64_t b = 0; b < count; ++b) {
    if (plan.reuse[b].length > 0) {
      cache_.CopyPrefixFrom(*plan.reuse[b].source, 0, first + b, plan.reuse[b].length);
      prefix_.CountReuse(plan.reuse[b].length);
    }
  }

  std::vector<std::string> names;
  for (const auto& seq : live_) names.push_back(seq->entry->request.adapter);
  auto adapters = PrepareAdapters(names);
  if (!adapters.ok()) return FailFrom(adapters.status(), first);
  std::optional<model::RowAdapters> rows;
  if (adapters->has_value()) rows = SliceAdapters(**adapters, first, count);

  // Each row's remaining prompt, right-padded to the widest.
  auto tokens = at::zeros({count, plan.widest_rest}, at::kLong);
  std::vector<int64_t> lengths(count);
  auto* tok = tokens.data_ptr<int64_t>();
  for (int64_t b = 0; b < count; ++b) {
    const auto& ids = live_[first + b]->entry->request.prompt_ids;
    std::copy(ids.begin() + plan.reuse[b].length, ids.end(), tok + b * plan.widest_rest);
    lengths[b] = static_cast<int64_t>(ids.size()) - plan.reuse[b].length;
  }
  model::KvCache view = cache_.Slice(first, count);
  auto logits = config_.model->Forward(tokens, lengths, view, false, rows ? &*rows : nullptr);
  if (!logits.ok()) return FailFrom(logits.status(), first);
  for (int64_t b = 0; b < count; ++b) {
    const auto& r = live_[first + b]->entry->request;
    if (auto s = prefix_.Insert(*config_.model, r.adapter, r.prompt_ids, cache_, first + b); !s.ok()) {
      LogWarning(absl::StrCat("prefix cache: prompt not kept: ", s.ToString()));
    }
  }
  PublishPrefixStats();
  const float* data = logits->data_ptr<float>();
  for (int64_t b = 0; b < count; ++b) Consume(*live_[first + b], data + b * vocab_);
  RemoveFinished();
}

void Scheduler::InvalidateAdapter(const std::string& name) {
  factored_names_.reset();
  prefix_.Forget(name);
  PublishPrefixStats();
  std::lock_guard<std::mutex> lock(mu_);
  adapter_usage_.erase(name);  // a new adapter under that name starts its own counts
}

void Scheduler::PublishPrefixStats() {
  std::lock_guard<std::mutex> lock(mu_);
  prefix_stats_ = prefix_.stats();
}

void Scheduler::Step(const std::vector<std::shared_ptr<Entry>>& admitted) {
  FaultPoint("scheduler.step");
  // Cancelled or expired sequences leave before any compute is spent on them.
  const absl::Time now = absl::Now();
  for (auto& seq : live_) {
    if (seq->entry->cancelled) {
      Finish(*seq, absl::CancelledError("cancelled"));
    } else if (now >= seq->entry->deadline) {
      Finish(*seq, absl::DeadlineExceededError("deadline passed while generating"));
    }
  }
  RemoveFinished();

  if (!admitted.empty()) {
    const int64_t first = static_cast<int64_t>(live_.size());
    for (auto& e : admitted) {
      auto seq = std::make_unique<Sequence>(e, *config_.tokenizer);
      seq->result.prompt_tokens = static_cast<int64_t>(e->request.prompt_ids.size());
      seq->result.queue_ms = MillisSince(e->submitted);
      if (e->callbacks.on_start) e->callbacks.on_start(seq->result.queue_ms);
      live_.push_back(std::move(seq));
    }
    PrefillAdmitted(first);
  }

  if (live_.empty()) return;
  FaultPoint("scheduler.decode");
  const int64_t n = static_cast<int64_t>(live_.size());
  auto tokens = at::zeros({n, 1}, at::kLong);
  std::vector<int64_t> lengths(n, 1);
  std::vector<std::string> names;
  for (int64_t b = 0; b < n; ++b) {
    tokens[b][0] = live_[b]->next_token;
    names.push_back(live_[b]->entry->request.adapter);
  }
  auto adapters = PrepareAdapters(names);
  if (!adapters.ok()) return FailFrom(adapters.status(), 0);
  model::KvCache view = cache_.Slice(0, n);
  auto logits = config_.model->Forward(tokens, lengths, view, false, adapters->has_value() ? &**adapters : nullptr);
  if (!logits.ok()) return FailFrom(logits.status(), 0);
  const float* data = logits->data_ptr<float>();
  for (int64_t b = 0; b < n; ++b) Consume(*live_[b], data + b * vocab_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++steps_;
    step_sequences_ += n;
  }
  RemoveFinished();
}

int64_t SharedCompletionTokens(std::span<const std::vector<int32_t>> completions) {
  // The shared part ends where the completions differ or where the shortest would be used up.
  int64_t shared = static_cast<int64_t>(completions[0].size()) - 1;
  for (const auto& c : completions) {
    const int64_t n = std::min<int64_t>(shared, static_cast<int64_t>(c.size()) - 1);
    shared = std::mismatch(c.begin(), c.begin() + n, completions[0].begin()).first - c.begin();
  }
  return shared;
}

absl::StatusOr<Scheduler::ScoredContext> Scheduler::ScoreContext(
    const ScoreRequest& request, const std::vector<int32_t>& context, int64_t shared,
    model::KvCache& cache, const std::optional<model::RowAdapters>& first_row) {
  const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
  const int64_t length = static_cast<int64_t>(context.size());
  model::KvCache context_row = cache.Slice(0, 1);

  // The prompt's beginning may be cached (the classification instructions are the same for
  // every request); the rest is prefilled, then the shared beginning of the completions.
  const PrefixCache::Match reuse = prefix_.Find(request.adapter, request.prompt_ids);
  if (reuse.length > 0) {
    cache.CopyPrefixFrom(*reuse.source, 0, 0, reuse.length);
    prefix_.CountReuse(reuse.length);
  }
  // One forward runs the rest of the prompt and the shared beginning; the logits from the
  // prompt's last position on give the shared tokens' log-probabilities and the first own
  // token's distribution.
  auto tokens = at::zeros({1, length - reuse.length}, at::kLong);
  std::copy(context.begin() + reuse.length, context.end(), tokens.data_ptr<int64_t>());
  const int64_t new_length[1] = {length - reuse.length};
  T2_ASSIGN_OR_RETURN(at::Tensor context_logits, config_.model->Forward(tokens, new_length, context_row, shared > 0,
                                                                        first_row ? &*first_row : nullptr));
  // Row i of `at` is the distribution after context position prompt - 1 + i.
  const float* at = context_logits.data_ptr<float>() + (shared > 0 ? (prompt - 1 - reuse.length) * vocab_ : 0);
  double shared_logprob = 0;
  for (int64_t j = 0; j < shared; ++j) {
    shared_logprob += LogProbability(std::span<const float>(at + j * vocab_, vocab_), context[prompt + j]);
  }
  std::vector<float> next(at + shared * vocab_, at + (shared + 1) * vocab_);
  if (auto s = prefix_.Insert(*config_.model, request.adapter, context, cache, 0); !s.ok()) {
    LogWarning(absl::StrCat("prefix cache: prompt not kept: ", s.ToString()));
  }
  PublishPrefixStats();
  return ScoredContext{.shared_logprob = shared_logprob, .next = std::move(next)};
}

absl::StatusOr<std::vector<CompletionScore>> Scheduler::RunScore(const ScoreRequest& request) {
  // The prompt is prefilled once, and so is the beginning all completions share (the
  // "\boxed{" of every label): that part's log-probability is the same for each. Its keys
  // and values are then copied to one row per completion, and the completions' own tails
  // run together. Label scoring costs one prefill, not one per label.
  FaultPoint("scheduler.score");
  const auto& completions = request.completions;
  const int64_t total = static_cast<int64_t>(completions.size());
  const int64_t shared = SharedCompletionTokens(completions);
  std::vector<int32_t> context = request.prompt_ids;
  context.insert(context.end(), completions[0].begin(), completions[0].begin() + shared);
  const int64_t length = static_cast<int64_t>(context.size());
  // The tails run without their last token, whose output nothing needs; a one-token tail's
  // log-probability comes straight from the context's last logits.
  int64_t longest = 0;
  for (const auto& c : completions) {
    if (!request.first_token_only)
      longest = std::max<int64_t>(longest, static_cast<int64_t>(c.size()) - shared - 1);
  }
  const int64_t chunk =
      longest == 0
          ? total
          : std::clamp<int64_t>(kScoreLogitBytes / (longest * vocab_ * 4), 1, config_.slots);
  const int64_t rows_needed = longest == 0 ? 1 : std::min(chunk, total);
  T2_ASSIGN_OR_RETURN(
      auto adapters,
      PrepareAdapters(std::vector<std::string>(rows_needed, request.adapter), /*one_pass=*/true));
  T2_ASSIGN_OR_RETURN(model::KvCache cache, config_.model->NewCache(rows_needed, length + longest));
  std::optional<model::RowAdapters> first_row;
  if (adapters.has_value()) first_row = SliceAdapters(*adapters, 0, 1);
  T2_ASSIGN_OR_RETURN(ScoredContext scored,
                      ScoreContext(request, context, shared, cache, first_row));
  const double shared_logprob = scored.shared_logprob;
  const std::vector<float>& next = scored.next;
  // For a second chunk of completions, row 0 gets the context back from this copy.
  model::KvCache context_copy;
  if (chunk < total) {
    T2_ASSIGN_OR_RETURN(context_copy, config_.model->NewCache(1, length));
    context_copy.CopyPrefixFrom(cache, 0, 0, length);
  }

  std::vector<CompletionScore> out(total);
  for (int64_t i = 0; i < total; ++i) {
    out[i].tokens = static_cast<int32_t>(request.first_token_only ? shared + 1 : completions[i].size());
    out[i].logprob = shared_logprob + LogProbability(next, completions[i][shared]);
  }
  if (longest == 0) return out;
  T2_RETURN_IF_ERROR(
      ScoreTails(request, {.shared = shared, .longest = longest, .chunk = chunk, .context = length},
                 cache, context_copy, adapters, out));
  return out;
}

absl::Status Scheduler::ScoreTails(const ScoreRequest& request, const ScoreTailPlan& plan,
                                   model::KvCache& cache, const model::KvCache& context_copy,
                                   const std::optional<model::RowAdapters>& adapters,
                                   std::vector<CompletionScore>& out) {
  const auto& completions = request.completions;
  const int64_t total = static_cast<int64_t>(completions.size());
  const int64_t shared = plan.shared, longest = plan.longest, chunk = plan.chunk;
  for (int64_t first = 0; first < total; first += chunk) {
    const int64_t rows = std::min(chunk, total - first);
    for (int64_t b = 1; b < rows; ++b) cache.CopyRow(0, b);
    model::KvCache view = cache.Slice(0, rows);
    auto tokens = at::zeros({rows, longest}, at::kLong);
    std::vector<int64_t> lengths(rows);
    auto* tok = tokens.data_ptr<int64_t>();
    for (int64_t b = 0; b < rows; ++b) {
      const auto& c = completions[first + b];
      std::copy(c.begin() + shared, c.end() - 1, tok + b * longest);
      lengths[b] = static_cast<int64_t>(c.size()) - shared - 1;
    }
    std::optional<model::RowAdapters> sliced;
    if (adapters.has_value()) sliced = SliceAdapters(*adapters, 0, rows);
    T2_ASSIGN_OR_RETURN(at::Tensor logits, config_.model->Forward(tokens, lengths, view, /*all_positions=*/true,
                                                                  sliced ? &*sliced : nullptr));
    const float* data = logits.data_ptr<float>();
    for (int64_t b = 0; b < rows; ++b) {
      // Own token j (after the first) is predicted at the tail position before it.
      const auto& c = completions[first + b];
      for (int64_t j = 1; j <= lengths[b]; ++j) {
        const float* row = data + (b * longest + j - 1) * vocab_;
        out[first + b].logprob += LogProbability(std::span<const float>(row, vocab_), c[shared + j]);
      }
      cache.ResetRow(b);
    }
    // Row 0 must hold the context again for the next chunk.
    if (first + chunk < total) cache.CopyPrefixFrom(context_copy, 0, 0, plan.context);
  }
  return absl::OkStatus();
}

}  // namespace t2::engine
