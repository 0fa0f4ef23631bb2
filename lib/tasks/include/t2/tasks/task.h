// Tasks that SVF experts are trained and judged on: solved examples, how each is asked (the
// prompt), how an answer is checked (a verifier from lib/adapt, the same ones the dispatcher's
// Adapt uses), and fixed train / validation / test splits. Plain C++: no torch, no protobuf.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/adapt/verifier.h"

namespace t2::tasks {

struct Example {
  std::string id;        // unique within a task
  std::string question;  // the problem itself, before the task's prompt template
  std::string answer;    // what the verifier expects
};

// Which part of a generated answer the verifier sees.
enum class AnswerPart {
  kWhole,      // the whole text
  kLastBoxed,  // the contents of the last \boxed{...}; an answer without one is wrong
  kFinalValue,  // what the last non-empty line that is not a code fence (```) states: its
                // first `backticked` span if it has one, else the text after its last ": ",
                // else the line; without surrounding quotes or a final period. "Output: 14",
                // "The output is: `14`" and "14" all read as "14".
};

// The part of `generated` that the verifier reads.
std::string AnswerText(AnswerPart part, std::string_view generated);

struct Task {
  std::string name;  // names the expert: "<name>-svf"; [a-z0-9][a-z0-9._-]*
  // The user message: every "{question}" replaced by the example's question.
  std::string prompt_template = "{question}";
  adapt::VerifierKind verifier = adapt::VerifierKind::kExact;
  AnswerPart answer_part = AnswerPart::kWhole;
  int32_t max_new_tokens = 64;  // enough for a good answer; longer ones are cut (and wrong)
  // When set, an answer is not generated but chosen among these completions: the one the
  // model scores highest (from the token where they depart), as the dispatcher's
  // label-scoring first pass chooses a category. The verifier then reads that completion.
  std::vector<std::string> choices;
  std::vector<Example> train, validation, test;

  // Every example's answer must be one its verifier can check (InvalidArgument naming the
  // split and id), ids unique across splits, the name valid and the splits non-empty.
  absl::Status Validate() const;
  // The chat user message for `example`.
  std::string Prompt(const Example& example) const;
  // Whether `generated` answers `example` correctly (Validate must have passed).
  bool IsCorrect(const Example& example, std::string_view generated) const;
};

// sha256 (hex) over the task's definition and every example of every split, in order: names
// the data a run was trained and judged on (it goes into the expert's metrics).
std::string DatasetHash(const Task& task);

struct SplitFractions {
  double validation = 0.1;
  double test = 0.2;  // the rest is train
};

// Shuffles `examples` with `seed` and cuts them into the three splits of `task` (replacing
// theirs). Each split gets at least one example; InvalidArgument if there are fewer than 3
// or the fractions are outside [0, 1) or sum to >= 1.
absl::Status SplitExamples(std::vector<Example> examples, uint64_t seed, const SplitFractions& fractions,
                           Task& task);

}  // namespace t2::tasks
