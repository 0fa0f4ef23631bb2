// The built-in tasks, generated offline from fixed seeds so that experts for the default
// model can be trained and judged with no download:
//   math:      one- and two-step arithmetic word problems; the answer is a number.
//   reasoning: multiple-choice questions (comparisons, ordering, simple logic, calendars);
//              the answer is a letter.
//   code:      what a short Python snippet prints; the answer is that output, exactly.
//   cls:       requests drawn from the three tasks above plus general chat requests, each
//              labelled code / math / reasoning / other, asked with the dispatcher's own
//              classification prompt (adapt::ClassificationPrompt), so that the trained
//              expert is exactly what the classifier-expert first pass runs.
// Every split is deterministic (the same examples on every machine), and the test splits
// hold kBuiltinTestSize examples.
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "t2/tasks/task.h"

namespace t2::tasks {

inline constexpr size_t kBuiltinTrainSize = 2000;
inline constexpr size_t kBuiltinValidationSize = 200;
inline constexpr size_t kBuiltinTestSize = 500;
inline constexpr size_t kClsTrainSize = 1000;  // cls: fewer (see builtin.cc)

// "math", "reasoning", "code", "cls".
std::vector<std::string_view> BuiltinTaskNames();

// InvalidArgument naming the accepted names for any other.
absl::StatusOr<Task> BuiltinTask(std::string_view name);

// The generators behind the tasks: `count` examples from `seed` (ids "<task>-<seed>-<i>").
// Exposed for tests (every code example is run through Python in the test suite).
std::vector<Example> GenerateMath(uint64_t seed, size_t count);
std::vector<Example> GenerateReasoning(uint64_t seed, size_t count);
std::vector<Example> GenerateCode(uint64_t seed, size_t count);
// General chat requests (creative writing, translation, advice, ...): the "other" category.
std::vector<Example> GenerateChat(uint64_t seed, size_t count);

}  // namespace t2::tasks
