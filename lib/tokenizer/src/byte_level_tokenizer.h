// Byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM): text pre-tokenized into words, each word's
// UTF-8 bytes spelled in the byte-level alphabet and merged; decoding maps the alphabet back
// to bytes. An optional Unicode normalizer (Qwen2's NFC) runs before pre-tokenization; decoding
// does not undo it.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "bpe_tokenizer.h"
#include "pre_tokenizer.h"
#include "unicode_normalizer.h"

namespace t2::tokenizer::internal {

class ByteLevelTokenizer final : public BpeTokenizer {
 public:
  // `normalizer` applies to the text between added tokens matched in the raw input (HF's
  // order); normalized added tokens are then matched in its output.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(BpeTokenizerParts parts,
                                                           PreTokenizer pre_tokenizer,
                                                           UnicodeNormalizer normalizer = {});

 protected:
  void EncodeText(std::string_view text, size_t begin, std::vector<int32_t>* out) const override;
  size_t DecodePrefix(std::span<const int32_t> ids, bool skip_special, bool final, uint32_t* state,
                      std::string* out) const override;

 private:
  ByteLevelTokenizer(BpeModel model, PreTokenizer pre, UnicodeNormalizer normalizer)
      : BpeTokenizer(std::move(model)), pre_(std::move(pre)), normalizer_(std::move(normalizer)) {}
  PreTokenizer pre_;
  UnicodeNormalizer normalizer_;
};

}  // namespace t2::tokenizer::internal
