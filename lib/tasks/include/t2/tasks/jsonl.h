// Readers for the JSONL shapes that task data sets usually come in, one example per line:
//   gsm8k: {"question": "...", "answer": "... reasoning ... #### 72"}  (the number after
//          "####" is the answer; commas in it are dropped)
//   arc:   {"id": "...", "question": "...", "choices": {"text": [...], "label": ["A", ...]},
//           "answerKey": "A"}, or ARC's original form with "question": {"stem": "...",
//           "choices": [{"text": "...", "label": "A"}, ...]}; the choices are appended to
//           the question as "A) ..." lines
//   plain: {"question": "...", "answer": "..."} (an answer that is a JSON number is written
//          as its text)
// An optional "id" (string or integer) names an example; without one it is "<file stem>-<line>".
#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "t2/tasks/task.h"

namespace t2::tasks {

enum class JsonlShape { kAuto, kGsm8k, kArc, kPlain };

// "auto", "gsm8k", "arc", "plain".
absl::StatusOr<JsonlShape> ParseJsonlShape(std::string_view name);

// Reads every non-blank line of `path`. kAuto decides per line: "answerKey" means arc, an
// answer containing "####" gsm8k, else plain. Errors (InvalidArgument, or NotFound for a
// missing file) name the file and the 1-based line: bad JSON, a missing or mistyped field,
// an answer key that names no choice, a duplicate id, an empty file.
absl::StatusOr<std::vector<Example>> ReadJsonl(const std::filesystem::path& path, JsonlShape shape = JsonlShape::kAuto);

}  // namespace t2::tasks
