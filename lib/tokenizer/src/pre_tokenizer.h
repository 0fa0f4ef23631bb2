// Pre-tokenization for byte-level BPE: cutting text into the words BPE runs on, as a sequence
// of HF pre-tokenizer steps (Split with behaviour "isolated", Digits, ByteLevel's own regex).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "regex.h"

namespace t2::tokenizer::internal {

// The split regexes of the model families t2 knows.
inline constexpr std::string_view kGpt2Split =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

class PreTokenizer {
 public:
  // Every match and every stretch between matches becomes its own piece.
  absl::Status AddSplit(std::string_view pattern);
  // Numbers (\p{N}) cut out: each digit alone, or each run of digits.
  absl::Status AddDigits(bool individual);
  // HF ByteLevel(add_prefix_space, use_regex): a space prepended to each piece not starting
  // with one, then (use_regex) the GPT-2 split.
  absl::Status AddByteLevel(bool add_prefix_space, bool use_regex);

  // The pre-tokenizer a GGUF tokenizer.ggml.pre name stands for in the model it came from.
  // UnimplementedError for a name t2 does not know.
  static absl::StatusOr<PreTokenizer> ForGgufPre(std::string_view pre);

  // The pieces of valid UTF-8 `text`, in order; their concatenation is `text` (plus any
  // prefix spaces).
  std::vector<std::string> Split(std::string_view text) const;

 private:
  struct Step {
    std::shared_ptr<const Regex> regex;  // null: only the prefix space
    bool add_prefix_space = false;
  };
  std::vector<Step> steps_;
};

}  // namespace t2::tokenizer::internal
