// What byte-level and SentencePiece tokenizers share: the BPE model, added tokens, special
// ids, and the Encode skeleton (added tokens first, then the family's own text encoding).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "added_tokens.h"
#include "bpe_model.h"
#include "t2/tokenizer/tokenizer.h"

namespace t2::tokenizer::internal {

// Everything a loader reads, whichever the file format.
struct BpeTokenizerParts {
  BpeModel model;
  std::vector<AddedToken> added;  // ids may lie beyond the model's vocabulary
  SpecialTokens special;          // stop_ids are filled in by Init
  std::string chat_template;
};

class BpeTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text, bool add_special) const override;
  std::string Decode(std::span<const int32_t> ids, bool skip_special) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  bool IsControl(int32_t id) const override;
  std::optional<int32_t> TokenId(std::string_view piece) const override;

 protected:
  explicit BpeTokenizer(BpeModel model) : model_(std::move(model)) {}
  // Takes the added tokens and special ids. `normalize` is the family's normalizer, if it has
  // one: normalized added tokens are matched in normalized text, and decoded, spelled as it
  // writes them.
  absl::Status Init(BpeTokenizerParts parts,
                    const std::function<std::string(std::string_view)>& normalize = nullptr);

  // Encodes a stretch of text between raw-matched added tokens. `begin` is its byte offset in
  // the input (0: it opens the text).
  virtual void EncodeText(std::string_view text, size_t begin, std::vector<int32_t>* out) const = 0;

  // The token's spelling: an added token's content, or the vocabulary piece; null if unknown.
  const std::string* TokenString(int32_t id) const;
  bool Skipped(int32_t id, bool skip_special) const;

  // Pass-two matching: normalized added tokens found in a (normalized) stretch of text, the
  // rest handed to encode(stretch, byte offset of the stretch in the input).
  template <typename F>
  void SplitNormalized(std::string_view text, size_t begin, std::vector<int32_t>* out,
                       F&& encode) const {
    for (const auto& seg : added_normalized_.Split(text)) {
      if (seg.id >= 0) {
        out->push_back(seg.id);
      } else {
        encode(text.substr(seg.begin, seg.end - seg.begin), begin + seg.begin);
      }
    }
  }

  BpeModel model_;

 private:
  AddedTokenMatcher added_raw_;
  AddedTokenMatcher added_normalized_;
  absl::flat_hash_map<int32_t, std::string> added_content_;
  absl::flat_hash_map<std::string, int32_t> added_ids_;
  std::vector<uint8_t> skip_flags_;  // by id: 1 if Decode(skip_special) drops it
  int32_t vocab_size_ = 0;
};

// stop_ids for a vocabulary: eos plus the end-of-turn tokens it has.
std::vector<int32_t> StopIds(const Tokenizer& tokenizer, int32_t eos);

}  // namespace t2::tokenizer::internal
