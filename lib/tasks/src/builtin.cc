#include <algorithm>
#include <functional>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "rng.h"
#include "t2/adapt/classify.h"
#include "t2/common/status.h"
#include "t2/tasks/builtin.h"

namespace t2::tasks {
namespace {

struct Sizes {
  size_t train = kBuiltinTrainSize, validation = kBuiltinValidationSize, test = kBuiltinTestSize;
  size_t total() const { return train + validation + test; }
};

// The first `count` examples whose questions are all different, from `generate` at `seed`
// (a test question must not also be a training one). Fewer if the generator cannot make
// that many (the tests check every task's split sizes).
std::vector<Example> Unique(const std::function<std::vector<Example>(uint64_t, size_t)>& generate, uint64_t seed,
                            size_t count) {
  std::vector<Example> out;
  std::set<std::string> seen;
  for (const Example& e : generate(seed, count * 4)) {
    if (seen.insert(e.question).second) out.push_back(e);
    if (out.size() == count) break;
  }
  return out;
}

void Cut(const std::vector<Example>& pool, const Sizes& sizes, Task& task) {
  auto at = [&](size_t i) { return pool.begin() + static_cast<std::ptrdiff_t>(std::min(i, pool.size())); };
  task.train.assign(at(0), at(sizes.train));
  task.validation.assign(at(sizes.train), at(sizes.train + sizes.validation));
  task.test.assign(at(sizes.train + sizes.validation), at(sizes.total()));
}

// What the built-in tasks ask: answer formats a verifier can check, as a user would write.
constexpr const char* kMathPrompt = "{question}\nGive the final answer as a number.";
constexpr const char* kReasoningPrompt = "{question}\nAnswer with the letter of the correct option.";
constexpr const char* kCodePrompt =
    "What does this Python code print?\n\n```python\n{question}\n```\n\nReply with the output only.";

Task MathTask() {
  Task t{.name = "math", .prompt_template = kMathPrompt, .verifier = adapt::VerifierKind::kNumeric,
         .max_new_tokens = 96};
  Cut(Unique(GenerateMath, 1, Sizes{}.total()), Sizes{}, t);
  return t;
}

Task ReasoningTask() {
  Task t{.name = "reasoning", .prompt_template = kReasoningPrompt,
         .verifier = adapt::VerifierKind::kChoiceLetter, .max_new_tokens = 48};
  Cut(Unique(GenerateReasoning, 1, Sizes{}.total()), Sizes{}, t);
  return t;
}

Task CodeTask() {
  Task t{.name = "code", .prompt_template = kCodePrompt, .verifier = adapt::VerifierKind::kExact,
         .answer_part = AnswerPart::kFinalValue, .max_new_tokens = 32};
  Cut(Unique(GenerateCode, 1, Sizes{}.total()), Sizes{}, t);
  return t;
}

// Requests of every category, a quarter each, the task requests written as their tasks ask
// them; each becomes the classification prompt the dispatcher sends.
Task ClsTask() {
  // Answered by label scoring, as the classifier-expert first pass runs it by default: a
  // small model rarely writes \boxed{...} when asked, so generating would teach nothing.
  Task t{.name = "cls", .prompt_template = "{question}", .verifier = adapt::VerifierKind::kCategory,
         .max_new_tokens = 16, .choices = adapt::LabelCompletions()};
  // Fewer training requests than the other tasks: "other" has fewer distinct requests.
  const Sizes sizes{.train = kClsTrainSize};
  const size_t quarter = (sizes.total() + 3) / 4;
  const Task math = MathTask(), reasoning = ReasoningTask(), code = CodeTask();
  // Seeds apart from the tasks' own: different requests than the ones the experts train on.
  std::vector<std::vector<Example>> by_category = {
      Unique(GenerateCode, 101, quarter), Unique(GenerateMath, 101, quarter), Unique(GenerateReasoning, 101, quarter),
      Unique(GenerateChat, 101, quarter)};
  const Task* prompts[] = {&code, &math, &reasoning, nullptr};
  size_t per_category = quarter;
  for (const auto& examples : by_category) per_category = std::min(per_category, examples.size());
  std::vector<Example> pool;
  for (size_t i = 0; i < per_category; ++i) {
    for (size_t c = 0; c < by_category.size(); ++c) {
      const Example& e = by_category[c][i];
      const std::string request = prompts[c] != nullptr ? prompts[c]->Prompt(e) : e.question;
      pool.push_back({absl::StrCat("cls-", e.id), adapt::ClassificationPrompt(request),
                      std::string(adapt::kCategories[c])});
    }
  }
  // Interleaved by category above; shuffled so that no split leans on one.
  Rng rng(7);
  rng.Shuffle(pool);
  pool.resize(std::min(pool.size(), sizes.total()));
  Cut(pool, sizes, t);
  return t;
}

}  // namespace

std::vector<std::string_view> BuiltinTaskNames() { return {"math", "reasoning", "code", "cls"}; }

absl::StatusOr<Task> BuiltinTask(std::string_view name) {
  if (name == "math") return MathTask();
  if (name == "reasoning") return ReasoningTask();
  if (name == "code") return CodeTask();
  if (name == "cls") return ClsTask();
  return absl::InvalidArgumentError(
      absl::StrCat("task '", AsAbsl(name), "' is not built in (math, reasoning, code, cls); give a data file"));
}

}  // namespace t2::tasks
