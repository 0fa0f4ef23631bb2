#include "t2/tasks/jsonl.h"

#include <fstream>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "t2/common/status.h"

namespace t2::tasks {
namespace {

using json = nlohmann::json;

absl::StatusOr<std::string> StringField(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return absl::InvalidArgumentError(absl::StrCat("missing field \"", key, "\""));
  if (!it->is_string()) return absl::InvalidArgumentError(absl::StrCat("field \"", key, "\" is not a string"));
  return it->get<std::string>();
}

// "plain": an answer may be a string or a number.
absl::StatusOr<std::string> AnswerText(const json& object) {
  auto it = object.find("answer");
  if (it == object.end()) return absl::InvalidArgumentError("missing field \"answer\"");
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  if (it->is_number()) return it->dump();
  return absl::InvalidArgumentError("field \"answer\" is not a string or a number");
}

absl::StatusOr<Example> Gsm8k(const json& line) {
  Example e;
  T2_ASSIGN_OR_RETURN(e.question, StringField(line, "question"));
  T2_ASSIGN_OR_RETURN(std::string answer, StringField(line, "answer"));
  const size_t mark = answer.rfind("####");
  if (mark == std::string::npos) return absl::InvalidArgumentError("field \"answer\" has no \"#### <answer>\"");
  e.answer = absl::StrReplaceAll(absl::StripAsciiWhitespace(answer.substr(mark + 4)), {{",", ""}});
  if (e.answer.empty()) return absl::InvalidArgumentError("field \"answer\" has nothing after \"####\"");
  return e;
}

absl::StatusOr<Example> Arc(const json& line) {
  Example e;
  // HF datasets' flat form, or the original {"stem", "choices": [{"text", "label"}]}.
  const json* choices = nullptr;
  std::vector<std::pair<std::string, std::string>> options;  // label, text
  auto q = line.find("question");
  if (q == line.end()) return absl::InvalidArgumentError("missing field \"question\"");
  if (q->is_object()) {
    T2_ASSIGN_OR_RETURN(e.question, StringField(*q, "stem"));
    auto c = q->find("choices");
    if (c == q->end() || !c->is_array()) return absl::InvalidArgumentError("field \"question.choices\" is not a list");
    for (const json& choice : *c) {
      if (!choice.is_object()) return absl::InvalidArgumentError("a choice is not an object");
      T2_ASSIGN_OR_RETURN(std::string label, StringField(choice, "label"));
      T2_ASSIGN_OR_RETURN(std::string text, StringField(choice, "text"));
      options.emplace_back(label, text);
    }
  } else if (q->is_string()) {
    e.question = q->get<std::string>();
    auto c = line.find("choices");
    if (c == line.end() || !c->is_object()) return absl::InvalidArgumentError("missing object field \"choices\"");
    choices = &*c;
    auto labels = choices->find("label");
    auto texts = choices->find("text");
    if (labels == choices->end() || texts == choices->end() || !labels->is_array() || !texts->is_array() ||
        labels->size() != texts->size()) {
      return absl::InvalidArgumentError("field \"choices\" needs lists \"label\" and \"text\" of one length");
    }
    for (size_t i = 0; i < labels->size(); ++i) {
      if (!(*labels)[i].is_string() || !(*texts)[i].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat("choices[", i, "]: label and text must be strings"));
      }
      options.emplace_back((*labels)[i].get<std::string>(), (*texts)[i].get<std::string>());
    }
  } else {
    return absl::InvalidArgumentError("field \"question\" is not a string or an object");
  }
  if (options.size() < 2) return absl::InvalidArgumentError("fewer than 2 choices");
  T2_ASSIGN_OR_RETURN(std::string key, StringField(line, "answerKey"));
  // Some ARC questions label their choices 1-4: shown and answered as A-D, so that every
  // question is answered with a letter.
  std::string answer;
  for (size_t i = 0; i < options.size(); ++i) {
    std::string letter(1, static_cast<char>('A' + i));
    if (options[i].first == key) answer = letter;
    absl::StrAppend(&e.question, "\n", letter, ") ", options[i].second);
  }
  if (answer.empty()) return absl::InvalidArgumentError(absl::StrCat("answerKey \"", key, "\" names no choice"));
  e.answer = answer;
  return e;
}

absl::StatusOr<Example> Plain(const json& line) {
  Example e;
  T2_ASSIGN_OR_RETURN(e.question, StringField(line, "question"));
  T2_ASSIGN_OR_RETURN(e.answer, AnswerText(line));
  return e;
}

absl::StatusOr<Example> ReadLine(const json& line, JsonlShape shape) {
  if (!line.is_object()) return absl::InvalidArgumentError("not a JSON object");
  if (shape == JsonlShape::kAuto) {
    if (line.contains("answerKey")) {
      shape = JsonlShape::kArc;
    } else if (auto a = line.find("answer"); a != line.end() && a->is_string() &&
                                             a->get<std::string>().find("####") != std::string::npos) {
      shape = JsonlShape::kGsm8k;
    } else {
      shape = JsonlShape::kPlain;
    }
  }
  Example e;
  switch (shape) {
    case JsonlShape::kGsm8k: { T2_ASSIGN_OR_RETURN(e, Gsm8k(line)); break; }
    case JsonlShape::kArc: { T2_ASSIGN_OR_RETURN(e, Arc(line)); break; }
    default: { T2_ASSIGN_OR_RETURN(e, Plain(line)); break; }
  }
  if (absl::StripAsciiWhitespace(e.question).empty()) return absl::InvalidArgumentError("empty question");
  if (absl::StripAsciiWhitespace(e.answer).empty()) return absl::InvalidArgumentError("empty answer");
  if (auto id = line.find("id"); id != line.end()) {
    if (id->is_string()) {
      e.id = id->get<std::string>();
    } else if (id->is_number_integer()) {
      e.id = std::to_string(id->get<int64_t>());
    } else {
      return absl::InvalidArgumentError("field \"id\" is not a string or an integer");
    }
    if (e.id.empty()) return absl::InvalidArgumentError("field \"id\" is empty");
  }
  return e;
}

}  // namespace

absl::StatusOr<JsonlShape> ParseJsonlShape(std::string_view name) {
  if (name == "auto") return JsonlShape::kAuto;
  if (name == "gsm8k") return JsonlShape::kGsm8k;
  if (name == "arc") return JsonlShape::kArc;
  if (name == "plain") return JsonlShape::kPlain;
  return absl::InvalidArgumentError(absl::StrCat("data format '", AsAbsl(name), "' is not one of auto, gsm8k, arc, plain"));
}

absl::StatusOr<std::vector<Example>> ReadJsonl(const std::filesystem::path& path, JsonlShape shape) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot be opened"));
  std::vector<Example> examples;
  std::set<std::string> ids;
  std::string text;
  int64_t number = 0;
  while (std::getline(in, text)) {
    ++number;
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    auto where = [&](const absl::Status& s) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ":", number, ": ", s.message()));
    };
    json line = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (line.is_discarded()) return where(absl::InvalidArgumentError("not valid JSON"));
    auto example = ReadLine(line, shape);
    if (!example.ok()) return where(example.status());
    if (example->id.empty()) example->id = absl::StrCat(path.stem().string(), "-", number);
    if (!ids.insert(example->id).second) {
      return where(absl::InvalidArgumentError(absl::StrCat("duplicate id \"", example->id, "\"")));
    }
    examples.push_back(std::move(*example));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path.string(), ": read error"));
  if (examples.empty()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": no examples (empty file)"));
  return examples;
}

}  // namespace t2::tasks
