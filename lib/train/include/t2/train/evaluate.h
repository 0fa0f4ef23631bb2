// Judging an adapter on a task: greedy answers to the chat prompts of some examples, checked
// by the task's verifier. The trainer's validation, the publish gate and the benchmarks all
// use this, so that every accuracy is computed the same way. Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "t2/engine/generator.h"
#include "t2/tasks/task.h"

namespace t2::train {

struct EvalResult {
  std::vector<bool> correct;          // one per example, in order
  std::vector<std::string> answers;   // the generated texts
  double accuracy = 0;                // mean of correct
  int64_t generated_tokens = 0;
  double seconds = 0;
};

// The prompt ids of `example` as the worker sends it: one user turn with the task's prompt,
// through the model's chat template.
absl::StatusOr<std::vector<int32_t>> PromptIds(const engine::Generator& generator, const tasks::Task& task,
                                               const tasks::Example& example);

// A task's choices (tasks::Task::choices) as token ids, and how many leading tokens they all
// share: the scores are compared from the token where they depart.
struct ChoiceTokens {
  std::vector<std::vector<int32_t>> ids;
  size_t shared = 0;
};
// InvalidArgument when two choices cannot be told apart by the token where they depart.
absl::StatusOr<ChoiceTokens> TokenizeChoices(const engine::Generator& generator, const tasks::Task& task);
// The index of the choice that `prompt` continues with most likely under `adapter` (one
// batched prefill: engine::ScoreRequest::first_token_only).
absl::StatusOr<size_t> Choose(engine::Generator& generator, const std::vector<int32_t>& prompt,
                              const ChoiceTokens& choices, const std::string& adapter);

// The answers of `adapter` ("" = the base model): greedy generations of at most
// task.max_new_tokens, batched by the generator, or for a task with choices the choice it
// scores highest. `on_done(done, total)` is called as answers finish (optional).
absl::StatusOr<EvalResult> Evaluate(engine::Generator& generator, const tasks::Task& task,
                                    std::span<const tasks::Example> examples, const std::string& adapter,
                                    const std::function<void(size_t done, size_t total)>& on_done = nullptr);

}  // namespace t2::train
