// Verifiers decide whether a generated answer solves a solved example; CEM's fitness is the
// fraction of examples whose answers they accept. The expected answer is checked once, when
// the verifier is made, so that a bad example is a request error and never a silent zero.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace t2::adapt {

enum class VerifierKind {
  kExact,         // trimmed texts equal
  kNumeric,       // last number in the answer equals the expected number (relative 1e-6)
  kChoiceLetter,  // the answer's choice letter (A-J) equals the expected one
  kRegex,         // expected is an RE2 regular expression found in the answer (no
                  // backreferences or lookaround; matching is linear in the answer's length)
  kCategory,      // the first-pass category the answer names (CategoryFromGenerated) equals
                  // the expected one: how the classification expert is trained and judged
};

// Longest regular expression a verifier takes: patterns come from clients (Adapt examples),
// and RE2's memory and compile time grow with the pattern.
inline constexpr size_t kMaxRegexPatternBytes = 1024;

// "exact", "numeric", "choice", "regex", "category".
std::string_view VerifierKindName(VerifierKind kind);
// InvalidArgumentError naming the value and the accepted names.
absl::StatusOr<VerifierKind> ParseVerifierKind(std::string_view name);

// Immutable after Create; Accepts is thread-safe. Cheap to copy (the regex is shared).
class Verifier {
 public:
  // InvalidArgumentError when `expected` cannot serve its kind: no number in it (numeric), no
  // choice letter (choice), or an invalid or too long (kMaxRegexPatternBytes) regular
  // expression (regex).
  static absl::StatusOr<Verifier> Create(VerifierKind kind, std::string_view expected);

  bool Accepts(std::string_view answer) const;
  VerifierKind kind() const { return kind_; }

 private:
  VerifierKind kind_ = VerifierKind::kExact;
  std::string expected_text_;
  double expected_number_ = 0;
  char expected_letter_ = 0;
  std::string expected_category_;
  std::shared_ptr<const re2::RE2> regex_;
};

// The last number written in `text`: an optional minus sign, digits with optional ","
// thousands separators (groups of three) and an optional decimal part; commas are dropped.
// "$1,234.50 or -7" gives -7. nullopt when there is none.
std::optional<double> LastNumber(std::string_view text);

// The choice letter an answer gives: after "answer" ("Answer: B", "the answer is (c)") if
// the text says so, else the first parenthesised letter "(B)", else the first standalone
// capital A-J (not part of a word). Returned in upper case; nullopt when there is none.
std::optional<char> ChoiceLetter(std::string_view text);

// |a - b| <= 1e-6 * max(|a|, |b|).
bool NumbersEqual(double a, double b);

}  // namespace t2::adapt
