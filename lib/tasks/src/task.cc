#include "t2/tasks/task.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "t2/adapt/classify.h"
#include "t2/common/sha256.h"
#include "t2/common/status.h"
#include "t2/store/names.h"

namespace t2::tasks {

absl::Status Task::Validate() const {
  T2_RETURN_IF_ERROR(store::CheckName("task.name", name));
  if (prompt_template.find("{question}") == std::string::npos) {
    return absl::InvalidArgumentError("task.prompt_template: has no {question} placeholder");
  }
  if (max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("task.max_new_tokens must be >= 1, got ", max_new_tokens));
  }
  std::set<std::string_view> distinct_choices;
  for (const std::string& c : choices) {
    if (c.empty()) return absl::InvalidArgumentError(absl::StrCat("task '", name, "': an empty choice"));
    if (!distinct_choices.insert(c).second) {
      return absl::InvalidArgumentError(absl::StrCat("task '", name, "': choice '", c, "' is listed twice"));
    }
  }
  std::set<std::string_view> ids;
  for (const auto& [split, examples] : {std::pair<const char*, const std::vector<Example>*>{"train", &train},
                                        {"validation", &validation},
                                        {"test", &test}}) {
    if (examples->empty()) return absl::InvalidArgumentError(absl::StrCat("task '", name, "': no ", split, " examples"));
    for (const Example& e : *examples) {
      if (e.id.empty()) return absl::InvalidArgumentError(absl::StrCat("task '", name, "' ", split, ": empty id"));
      if (!ids.insert(e.id).second) {
        return absl::InvalidArgumentError(absl::StrCat("task '", name, "' ", split, ": duplicate id '", e.id, "'"));
      }
      if (e.question.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("task '", name, "' ", split, " '", e.id, "': empty question"));
      }
      if (auto v = adapt::Verifier::Create(verifier, e.answer); !v.ok()) {
        return Annotate(v.status(), absl::StrCat("task '", name, "' ", split, " '", e.id, "'"));
      }
    }
  }
  return absl::OkStatus();
}

std::string Task::Prompt(const Example& example) const {
  return absl::StrReplaceAll(prompt_template, {{"{question}", example.question}});
}

std::string AnswerText(AnswerPart part, std::string_view generated) {
  switch (part) {
    case AnswerPart::kWhole:
      return std::string(generated);
    case AnswerPart::kLastBoxed:
      return adapt::LastBoxed(generated).value_or("");
    case AnswerPart::kFinalValue: {
      absl::string_view last;
      for (absl::string_view line : absl::StrSplit(AsAbsl(generated), '\n')) {
        line = absl::StripAsciiWhitespace(line);
        if (!line.empty() && !absl::StartsWith(line, "```")) last = line;
      }
      const size_t open = last.find('`');
      const size_t close = open == absl::string_view::npos ? open : last.find('`', open + 1);
      if (close != absl::string_view::npos) {
        last = last.substr(open + 1, close - open - 1);
      } else if (const size_t colon = last.rfind(": "); colon != absl::string_view::npos) {
        last = last.substr(colon + 2);
      }
      last = absl::StripAsciiWhitespace(last);
      if (absl::EndsWith(last, ".")) last.remove_suffix(1);
      if (last.size() >= 2 && (last.front() == '"' || last.front() == '\'') && last.back() == last.front()) {
        last = last.substr(1, last.size() - 2);
      }
      return std::string(last);
    }
  }
  return "";
}

bool Task::IsCorrect(const Example& example, std::string_view generated) const {
  auto v = adapt::Verifier::Create(verifier, example.answer);
  if (!v.ok()) return false;
  if (answer_part == AnswerPart::kLastBoxed && !adapt::LastBoxed(generated).has_value()) return false;
  return v->Accepts(AnswerText(answer_part, generated));
}

std::string DatasetHash(const Task& task) {
  Sha256 hash;
  // Length-prefixed fields: no two different tasks hash the same bytes.
  auto field = [&](std::string_view s) {
    hash.Update(absl::StrCat(s.size(), ":"));
    hash.Update(s);
  };
  field(task.name);
  field(task.prompt_template);
  field(adapt::VerifierKindName(task.verifier));
  field(absl::StrCat(static_cast<int>(task.answer_part)));
  field(absl::StrCat(task.max_new_tokens));
  field(absl::StrCat(task.choices.size()));
  for (const std::string& c : task.choices) field(c);
  for (const auto* split : {&task.train, &task.validation, &task.test}) {
    field(absl::StrCat(split->size()));
    for (const Example& e : *split) {
      field(e.id);
      field(e.question);
      field(e.answer);
    }
  }
  return hash.HexDigest();
}

absl::Status SplitExamples(std::vector<Example> examples, uint64_t seed, const SplitFractions& fractions,
                           Task& task) {
  auto in_range = [](double f) { return std::isfinite(f) && f >= 0 && f < 1; };
  if (!in_range(fractions.validation) || !in_range(fractions.test) || fractions.validation + fractions.test >= 1) {
    return absl::InvalidArgumentError(absl::StrCat("split fractions: validation ", fractions.validation, " and test ",
                                                   fractions.test, " must be in [0, 1) and sum to < 1"));
  }
  const size_t n = examples.size();
  if (n < 3) return absl::InvalidArgumentError(absl::StrCat("split: ", n, " examples; at least 3 are needed"));
  // A fixed generator and a Fisher-Yates shuffle written out: std::shuffle's algorithm is
  // the library's choice, and the splits must be the same on every machine.
  std::mt19937_64 rng(seed);
  for (size_t i = n - 1; i > 0; --i) {
    const size_t j = static_cast<size_t>(rng() % (i + 1));
    std::swap(examples[i], examples[j]);
  }
  const size_t test = std::clamp<size_t>(static_cast<size_t>(std::llround(fractions.test * n)), 1, n - 2);
  const size_t validation =
      std::clamp<size_t>(static_cast<size_t>(std::llround(fractions.validation * n)), 1, n - 1 - test);
  task.test.assign(examples.begin(), examples.begin() + test);
  task.validation.assign(examples.begin() + test, examples.begin() + test + validation);
  task.train.assign(examples.begin() + test + validation, examples.end());
  return absl::OkStatus();
}

}  // namespace t2::tasks
