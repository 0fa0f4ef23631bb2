// Added and special tokens ("<|im_start|>", "<s>") found whole in text before any other
// processing, with HF tokenizers' AddedVocabulary rules: leftmost-longest, non-overlapping
// matches, and the single_word / lstrip / rstrip options.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "regex.h"

namespace t2::tokenizer::internal {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // dropped by Decode(skip_special = true)
  bool normalized = false;   // matched in normalized text rather than in the raw input
  bool single_word = false;  // only where no word character touches it
  bool lstrip = false;       // takes the whitespace on its left
  bool rstrip = false;       // takes the whitespace on its right
};

class AddedTokenMatcher {
 public:
  struct Segment {
    size_t begin = 0;
    size_t end = 0;
    int32_t id = -1;  // -1: text between matches
  };

  // Matches the given tokens (empty contents are ignored).
  static absl::StatusOr<AddedTokenMatcher> Create(std::vector<AddedToken> tokens);

  // `text` cut into matched tokens and the text between them, in order, covering it all
  // (whitespace taken by lstrip/rstrip belongs to the token's segment).
  std::vector<Segment> Split(std::string_view text) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::vector<int>> by_first_byte_;  // token indices, longest first
  std::shared_ptr<const Regex> word_char_;
};

}  // namespace t2::tokenizer::internal
