#include "t2/train/evaluate.h"

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "seconds_since.h"
#include "t2/common/status.h"
#include "t2/tokenizer/chat_template.h"

namespace t2::train {

absl::StatusOr<std::vector<int32_t>> PromptIds(const engine::Generator& generator, const tasks::Task& task,
                                               const tasks::Example& example) {
  const tokenizer::ChatMessage message{"user", task.Prompt(example)};
  auto ids = tokenizer::EncodeChat(generator.tokenizer(), std::span<const tokenizer::ChatMessage>(&message, 1));
  if (!ids.ok()) return Annotate(ids.status(), absl::StrCat("example '", example.id, "'"));
  return ids;
}

absl::StatusOr<ChoiceTokens> TokenizeChoices(const engine::Generator& generator, const tasks::Task& task) {
  ChoiceTokens out;
  for (const std::string& c : task.choices) out.ids.push_back(generator.tokenizer().Encode(c, /*add_special=*/false));
  if (out.ids.empty()) return absl::InvalidArgumentError(absl::StrCat("task '", task.name, "' has no choices"));
  size_t shared = out.ids[0].size();
  for (const auto& ids : out.ids) {
    size_t n = 0;
    while (n < shared && n < ids.size() && ids[n] == out.ids[0][n]) ++n;
    shared = n;
  }
  for (const auto& ids : out.ids) {
    if (ids.size() <= shared) {
      return absl::InvalidArgumentError(absl::StrCat("task '", task.name, "': a choice is the beginning of another"));
    }
  }
  out.shared = shared;
  return out;
}

absl::StatusOr<size_t> Choose(engine::Generator& generator, const std::vector<int32_t>& prompt,
                              const ChoiceTokens& choices, const std::string& adapter) {
  engine::ScoreRequest request{.prompt_ids = prompt, .completions = choices.ids, .adapter = adapter,
                               .first_token_only = true};
  T2_ASSIGN_OR_RETURN(std::vector<engine::CompletionScore> scores, generator.Score(request));
  size_t best = 0;
  for (size_t i = 1; i < scores.size(); ++i) {
    if (scores[i].logprob > scores[best].logprob) best = i;
  }
  return best;
}

namespace {

absl::StatusOr<EvalResult> EvaluateChoices(engine::Generator& generator, const tasks::Task& task,
                                           std::span<const tasks::Example> examples, const std::string& adapter,
                                           const std::function<void(size_t, size_t)>& on_done) {
  EvalResult result;
  T2_ASSIGN_OR_RETURN(ChoiceTokens choices, TokenizeChoices(generator, task));
  size_t right = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    T2_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, PromptIds(generator, task, examples[i]));
    T2_ASSIGN_OR_RETURN(size_t k, Choose(generator, prompt, choices, adapter));
    result.answers.push_back(task.choices[k]);
    result.correct.push_back(task.IsCorrect(examples[i], task.choices[k]));
    right += result.correct.back() ? 1 : 0;
    if (on_done) on_done(i + 1, examples.size());
  }
  result.accuracy = static_cast<double>(right) / static_cast<double>(examples.size());
  return result;
}

}  // namespace

absl::StatusOr<EvalResult> Evaluate(engine::Generator& generator, const tasks::Task& task,
                                    std::span<const tasks::Example> examples, const std::string& adapter,
                                    const std::function<void(size_t, size_t)>& on_done) {
  const auto start = std::chrono::steady_clock::now();
  EvalResult result;
  if (examples.empty()) return result;
  if (!task.choices.empty()) {
    T2_ASSIGN_OR_RETURN(result, EvaluateChoices(generator, task, examples, adapter, on_done));
    result.seconds = SecondsSince(start);
    return result;
  }
  result.correct.assign(examples.size(), false);
  result.answers.assign(examples.size(), "");
  std::mutex mu;
  std::condition_variable cv;
  size_t remaining = examples.size();
  absl::Status failure;
  // Submitted one by one (not Generator::Generate) so that progress can be reported as
  // answers finish; the generator batches them all the same.
  std::vector<std::shared_ptr<engine::RequestHandle>> handles;
  for (size_t i = 0; i < examples.size(); ++i) {
    engine::GenerationRequest request;
    T2_ASSIGN_OR_RETURN(request.prompt_ids, PromptIds(generator, task, examples[i]));
    request.max_new_tokens = task.max_new_tokens;
    request.adapter = adapter;
    engine::StreamCallbacks callbacks;
    callbacks.on_done = [&, i](absl::StatusOr<engine::GenerationResult> r) {
      std::lock_guard<std::mutex> lock(mu);
      if (r.ok()) {
        result.correct[i] = task.IsCorrect(examples[i], r->text);
        result.answers[i] = std::move(r->text);
        result.generated_tokens += static_cast<int64_t>(r->token_ids.size());
      } else if (failure.ok()) {
        failure = Annotate(r.status(), absl::StrCat("example '", examples[i].id, "'"));
      }
      --remaining;
      if (on_done) on_done(examples.size() - remaining, examples.size());
      cv.notify_all();
    };
    // A full queue is not an error here: wait for room, then submit again.
    while (true) {
      auto handle = generator.Submit(request, callbacks);
      if (handle.ok()) {
        handles.push_back(*std::move(handle));
        break;
      }
      if (!absl::IsResourceExhausted(handle.status())) {
        std::unique_lock<std::mutex> lock(mu);
        remaining -= examples.size() - i;
        cv.wait(lock, [&] { return remaining == 0; });
        return handle.status();
      }
      std::unique_lock<std::mutex> lock(mu);
      const size_t before = remaining;
      cv.wait_for(lock, std::chrono::seconds(1), [&] { return remaining < before; });
    }
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return remaining == 0; });
  if (!failure.ok()) return failure;
  size_t right = 0;
  for (bool c : result.correct) right += c ? 1 : 0;
  result.accuracy = static_cast<double>(right) / static_cast<double>(examples.size());
  result.seconds = SecondsSince(start);
  return result;
}

}  // namespace t2::train
