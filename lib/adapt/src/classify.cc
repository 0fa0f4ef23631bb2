#include "t2/adapt/classify.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "strip_whitespace.h"
#include "t2/common/status.h"

namespace t2::adapt {

std::string ClassificationPrompt(std::string_view request) {
  // Each category is named by what it covers, so that a small base model has a chance; the
  // answer is asked for alone, since a long one costs decode steps in GENERATE mode. No
  // example answer: a literal "\boxed{<label>}" in the prompt primes that label, which skews
  // label scoring towards it. The request comes last: everything before it is the same for
  // every request, so a worker's prefix cache prefills it once, and only the request's own
  // tokens remain to prefill.
  return absl::StrCat(
      "Classify the request at the end of this message into one of these categories: code, "
      "math, reasoning, other.\n"
      "- code: writing, completing, fixing or explaining computer programs\n"
      "- math: arithmetic, algebra, word problems and other questions that need calculation\n"
      "- reasoning: logic, common sense or science questions, including picking one of "
      "several given options\n"
      "- other: anything that is none of the above\n"
      "\n"
      "Do not solve the request. Reply with the category only, written as \\boxed{category}.\n"
      "\n"
      "Request:\n\"\"\"\n",
      AsAbsl(request), "\n\"\"\"");
}

namespace {

// The index of the '}' that closes the '{' at `open`, or npos when the text ends first.
size_t MatchingBrace(std::string_view text, size_t open) {
  int depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    if (text[i] == '{') {
      ++depth;
    } else if (text[i] == '}') {
      if (--depth == 0) return i;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::optional<std::string> LastBoxed(std::string_view text) {
  static constexpr std::string_view kMarker = "\\boxed";
  std::optional<std::string> last;
  size_t pos = 0;
  while ((pos = text.find(kMarker, pos)) != std::string_view::npos) {
    size_t open = pos + kMarker.size();
    while (open < text.size() && (text[open] == ' ' || text[open] == '\t')) ++open;
    pos += kMarker.size();
    if (open >= text.size() || text[open] != '{') continue;
    const size_t close = MatchingBrace(text, open);
    if (close == std::string_view::npos) break;  // unclosed: nothing later can close either
    last = std::string(text.substr(open + 1, close - open - 1));
    pos = close + 1;
  }
  return last;
}

std::string NormalizeCategory(std::string_view label) {
  std::string_view s = StripWhitespace(label);
  for (std::string_view wrapper : {"\\text{", "\\textbf{", "\\mathrm{", "\\texttt{"}) {
    if (s.size() > wrapper.size() && s.substr(0, wrapper.size()) == wrapper && s.back() == '}') {
      s = StripWhitespace(s.substr(wrapper.size(), s.size() - wrapper.size() - 1));
      break;
    }
  }
  if (!s.empty() && s.back() == '.') s = StripWhitespace(s.substr(0, s.size() - 1));
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
    s = StripWhitespace(s.substr(1, s.size() - 2));
  }
  std::string lower = absl::AsciiStrToLower(AsAbsl(s));
  for (std::string_view category : kCategories) {
    if (lower == category) return lower;
  }
  return std::string(kOtherCategory);
}

std::string CategoryFromGenerated(std::string_view text) {
  std::optional<std::string> boxed = LastBoxed(text);
  return boxed.has_value() ? NormalizeCategory(*boxed) : std::string(kOtherCategory);
}

std::vector<std::string> LabelCompletions() {
  std::vector<std::string> completions;
  completions.reserve(kCategories.size());
  for (std::string_view category : kCategories) {
    completions.push_back(absl::StrCat("\\boxed{", AsAbsl(category), "}"));
  }
  return completions;
}

size_t ArgMax(std::span<const double> values) {
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[best]) best = i;
  }
  return best;
}

}  // namespace t2::adapt
