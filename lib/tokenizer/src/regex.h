// A PCRE2 regular expression with the semantics HF tokenizers gets from Oniguruma: UTF-8,
// Unicode properties (\p{L}, \p{N}), and \s / \S meaning the Unicode White_Space property.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace t2::tokenizer::internal {

class Regex {
 public:
  // InvalidArgumentError quoting the pattern and PCRE2's message when it does not compile.
  static absl::StatusOr<std::shared_ptr<const Regex>> Compile(std::string_view pattern);
  // A pattern matching `literal` exactly.
  static std::string Escape(std::string_view literal);

  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // The [start, end) byte ranges of the successive non-overlapping matches in valid UTF-8
  // `text`, left to right. Thread-safe.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace t2::tokenizer::internal
