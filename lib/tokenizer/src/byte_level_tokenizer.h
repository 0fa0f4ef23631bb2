// Byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM): text pre-tokenized into words, each word's
// UTF-8 bytes spelled in the byte-level alphabet and merged; decoding maps the alphabet back
// to bytes.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "bpe_tokenizer.h"
#include "pre_tokenizer.h"

namespace t2::tokenizer::internal {

class ByteLevelTokenizer final : public BpeTokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(BpeTokenizerParts parts,
                                                           PreTokenizer pre_tokenizer);

 protected:
  void EncodeText(std::string_view text, size_t begin, std::vector<int32_t>* out) const override;
  size_t DecodePrefix(std::span<const int32_t> ids, bool skip_special, bool final, uint32_t* state,
                      std::string* out) const override;

 private:
  ByteLevelTokenizer(BpeModel model, PreTokenizer pre)
      : BpeTokenizer(std::move(model)), pre_(std::move(pre)) {}
  PreTokenizer pre_;
};

}  // namespace t2::tokenizer::internal
