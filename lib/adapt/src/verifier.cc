#include "t2/adapt/verifier.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"
#include "strip_whitespace.h"
#include "t2/adapt/classify.h"
#include "t2/common/status.h"

namespace t2::adapt {
namespace {

// RE2's budget for one compiled pattern; above it compiling fails (a client error) rather
// than the dispatcher's memory growing with hostile patterns.
constexpr int64_t kRegexMemoryBytes = int64_t{1} << 20;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool IsChoice(char c) { return c >= 'A' && c <= 'J'; }

// "the answer is (b)", "Answer: C": the letter, then not another letter or digit. Compiled
// once; RE2, since the text is the model's answer, whose length a client chooses.
const RE2& AnswerStatement() {
  static const RE2 re(R"((?i)answer\s*(?:is)?\s*:?\s*\(?([a-j])\)?(?:[^a-z0-9]|$))");
  return re;
}

}  // namespace

std::optional<double> LastNumber(std::string_view text) {
  std::optional<double> last;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    char c = text[i];
    const bool prev_word = i > 0 && (IsAlnum(text[i - 1]) || text[i - 1] == '.');
    const bool sign = c == '-' && i + 1 < n && IsDigit(text[i + 1]) && !prev_word;
    const bool leading_dot =
        c == '.' && i + 1 < n && IsDigit(text[i + 1]) && !(i > 0 && IsDigit(text[i - 1]));
    if (!IsDigit(c) && !sign && !leading_dot) {
      ++i;
      continue;
    }
    std::string number;
    if (sign) {
      number.push_back('-');
      ++i;
    }
    while (i < n && IsDigit(text[i])) number.push_back(text[i++]);
    // A comma counts as a thousands separator only before exactly three digits, so that a
    // list "1,2,3" stays three numbers while "1,234,567" is one.
    while (!number.empty() && i + 3 < n && text[i] == ',' && IsDigit(text[i + 1]) &&
           IsDigit(text[i + 2]) && IsDigit(text[i + 3]) && (i + 4 >= n || !IsDigit(text[i + 4]))) {
      number.append(text.substr(i + 1, 3));
      i += 4;
    }
    if (i + 1 < n && text[i] == '.' && IsDigit(text[i + 1])) {
      number.push_back('.');
      ++i;
      while (i < n && IsDigit(text[i])) number.push_back(text[i++]);
    }
    char* end = nullptr;
    double value = std::strtod(number.c_str(), &end);
    if (end == number.c_str() + number.size()) last = value;
  }
  return last;
}

std::optional<char> ChoiceLetter(std::string_view text) {
  std::string_view s = text;
  // An explicit statement wins; the last one, since models restate their final choice.
  std::optional<char> stated;
  re2::StringPiece rest(text.data(), text.size());
  std::string letter;
  while (RE2::FindAndConsume(&rest, AnswerStatement(), &letter)) {
    stated = static_cast<char>(std::toupper(static_cast<unsigned char>(letter[0])));
  }
  if (stated.has_value()) return stated;
  for (size_t i = 0; i + 2 < s.size(); ++i) {
    if (s[i] == '(' && IsChoice(s[i + 1]) && s[i + 2] == ')') return s[i + 1];
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsChoice(s[i])) continue;
    const bool alone_before = i == 0 || !IsAlnum(s[i - 1]);
    const bool alone_after = i + 1 == s.size() || !IsAlnum(s[i + 1]);
    if (alone_before && alone_after) return s[i];
  }
  return std::nullopt;
}

bool NumbersEqual(double a, double b) {
  // A number too long for a double reads as infinity, and inf - b is within any relative
  // tolerance of inf: such a number matches nothing.
  if (!std::isfinite(a) || !std::isfinite(b)) return false;
  if (a == b) return true;
  return std::fabs(a - b) <= 1e-6 * std::max(std::fabs(a), std::fabs(b));
}

std::string_view VerifierKindName(VerifierKind kind) {
  switch (kind) {
    case VerifierKind::kExact: return "exact";
    case VerifierKind::kNumeric: return "numeric";
    case VerifierKind::kChoiceLetter: return "choice";
    case VerifierKind::kRegex: return "regex";
    case VerifierKind::kCategory: return "category";
  }
  return "unknown";
}

absl::StatusOr<VerifierKind> ParseVerifierKind(std::string_view name) {
  for (VerifierKind kind : {VerifierKind::kExact, VerifierKind::kNumeric, VerifierKind::kChoiceLetter,
                            VerifierKind::kRegex, VerifierKind::kCategory}) {
    if (name == VerifierKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(absl::StrCat("verifier '", AsAbsl(name),
                                                 "' is not one of exact, numeric, choice, regex, category"));
}

namespace {

// What Verifier::Create keeps of `expected` for each kind, or the client error saying why
// `expected` cannot serve that kind.

absl::StatusOr<double> ExpectedNumber(std::string_view expected) {
  std::optional<double> number = LastNumber(expected);
  if (!number.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected answer '", AsAbsl(expected), "' has no number"));
  }
  return *number;
}

absl::StatusOr<char> ExpectedChoiceLetter(std::string_view expected) {
  std::string_view t = StripWhitespace(expected);
  if (t.size() == 3 && t.front() == '(' && t.back() == ')') t = t.substr(1, 1);
  if (t.size() == 2 && (t.back() == '.' || t.back() == ')')) t = t.substr(0, 1);
  std::optional<char> letter;
  // A bare lower-case letter ("b", "(b)", "b.") is a fine way to write the expected
  // choice, although a lower-case letter inside an answer is too ambiguous ("a") to count.
  if (t.size() == 1 &&
      IsChoice(static_cast<char>(std::toupper(static_cast<unsigned char>(t[0]))))) {
    letter = static_cast<char>(std::toupper(static_cast<unsigned char>(t[0])));
  } else {
    letter = ChoiceLetter(t);
  }
  if (!letter.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected answer '", AsAbsl(expected), "' has no choice letter A-J"));
  }
  return *letter;
}

absl::StatusOr<std::string> ExpectedCategory(std::string_view expected) {
  const std::string category = NormalizeCategory(expected);
  if (category == kOtherCategory &&
      absl::AsciiStrToLower(AsAbsl(StripWhitespace(expected))) != kOtherCategory) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected answer '", AsAbsl(expected),
                     "' is not a category (code, math, reasoning, other)"));
  }
  return category;
}

absl::StatusOr<std::shared_ptr<const RE2>> CompileExpectedRegex(std::string_view expected) {
  if (expected.size() > kMaxRegexPatternBytes) {
    return absl::InvalidArgumentError(absl::StrCat("regular expression of ", expected.size(),
                                                   " bytes exceeds the limit of ",
                                                   kMaxRegexPatternBytes));
  }
  RE2::Options options;
  options.set_log_errors(false);  // the error goes back to the client, not to our log
  options.set_max_mem(kRegexMemoryBytes);
  auto regex =
      std::make_shared<const RE2>(re2::StringPiece(expected.data(), expected.size()), options);
  if (!regex->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid regular expression '", AsAbsl(expected), "': ", regex->error()));
  }
  return regex;
}

}  // namespace

absl::StatusOr<Verifier> Verifier::Create(VerifierKind kind, std::string_view expected) {
  Verifier v;
  v.kind_ = kind;
  switch (kind) {
    case VerifierKind::kExact:
      v.expected_text_ = std::string(StripWhitespace(expected));
      return v;
    case VerifierKind::kNumeric: {
      T2_ASSIGN_OR_RETURN(v.expected_number_, ExpectedNumber(expected));
      return v;
    }
    case VerifierKind::kChoiceLetter: {
      T2_ASSIGN_OR_RETURN(v.expected_letter_, ExpectedChoiceLetter(expected));
      return v;
    }
    case VerifierKind::kCategory: {
      T2_ASSIGN_OR_RETURN(v.expected_category_, ExpectedCategory(expected));
      return v;
    }
    case VerifierKind::kRegex: {
      T2_ASSIGN_OR_RETURN(v.regex_, CompileExpectedRegex(expected));
      v.expected_text_ = std::string(expected);
      return v;
    }
  }
  return absl::InvalidArgumentError("unknown verifier kind");
}

bool Verifier::Accepts(std::string_view answer) const {
  switch (kind_) {
    case VerifierKind::kExact:
      return StripWhitespace(answer) == expected_text_;
    case VerifierKind::kNumeric: {
      std::optional<double> number = LastNumber(answer);
      return number.has_value() && NumbersEqual(*number, expected_number_);
    }
    case VerifierKind::kChoiceLetter: {
      std::optional<char> letter = ChoiceLetter(answer);
      return letter.has_value() && *letter == expected_letter_;
    }
    case VerifierKind::kCategory:
      return CategoryFromGenerated(answer) == expected_category_;
    case VerifierKind::kRegex:
      return RE2::PartialMatch(re2::StringPiece(answer.data(), answer.size()), *regex_);
  }
  return false;
}

}  // namespace t2::adapt
