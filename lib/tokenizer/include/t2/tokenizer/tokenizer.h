// Text <-> token ids for Llama-family models.
//
// Two families of vocabularies:
//  - byte-level BPE (GPT-2 style; GGUF tokenizer.ggml.model = "gpt2", or tokenizer.json with a
//    ByteLevel pre-tokenizer/decoder). The pre-tokenizer split is chosen by name (GGUF
//    tokenizer.ggml.pre: "gpt2", "llama-bpe"/"llama3", "qwen2", "smollm", ...) or read from
//    tokenizer.json.
//  - SentencePiece BPE with byte fallback (GGUF "llama"; Llama-2 / Mistral tokenizer.json).
//
// Thread safety: immutable after construction; Encode/Decode may run concurrently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace t2::formats {
class GgufFile;
}

namespace t2::tokenizer {

struct SpecialTokens {
  int32_t bos = -1;  // -1: none
  int32_t eos = -1;
  int32_t unk = -1;
  int32_t pad = -1;
  bool add_bos = false;  // Encode(add_special=true) prepends bos
  bool add_eos = false;  // Encode(add_special=true) appends eos
  // Every id that ends generation: eos plus end-of-turn tokens the vocabulary has
  // (<|im_end|>, <|eot_id|>, <|end_of_text|>, </s>), sorted, unique.
  std::vector<int32_t> stop_ids;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // From GGUF metadata (tokenizer.ggml.*). Errors name the missing or malformed key.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const formats::GgufFile& file);
  // From an HF folder: tokenizer.json, plus tokenizer_config.json when present (bos/eos,
  // add_bos_token, chat_template).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfDir(const std::filesystem::path& dir);

  // Text to ids. Special and added tokens written in the text ("<|im_start|>") become single
  // tokens, as HF tokenizers do by default. add_special adds bos/eos per SpecialTokens.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special) const = 0;

  // Ids to text; skip_special drops control tokens. Invalid UTF-8 produced by byte tokens is
  // replaced with U+FFFD, as HF's decode does. Ids outside the vocabulary are skipped.
  virtual std::string Decode(std::span<const int32_t> ids, bool skip_special) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual bool IsControl(int32_t id) const = 0;
  // The id of a token spelled exactly `piece` in the vocabulary (e.g. "<|im_end|>").
  virtual std::optional<int32_t> TokenId(std::string_view piece) const = 0;

  const SpecialTokens& special() const { return special_; }
  // The model's Jinja chat template source, or empty when it has none.
  const std::string& chat_template() const { return chat_template_; }

  // From the contents of an HF tokenizer.json and (optionally empty) tokenizer_config.json,
  // as FromHfDir reads them. Errors name the malformed or unsupported field.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfJson(std::string_view tokenizer_json,
                                                               std::string_view config_json);

 protected:
  friend class StreamDecoder;

  // Streaming hook behind StreamDecoder: decodes the longest prefix of `ids` whose text no
  // later id can change, appends that text to *out and returns how many ids it used (with
  // `final`, all of them). *state starts at 0 for a stream and carries start-of-text rules
  // (SentencePiece's dropped leading space) between calls; the concatenated outputs of
  // successive calls equal Decode(all ids). The default decodes with Decode and holds back
  // text that ends in U+FFFD.
  virtual size_t DecodePrefix(std::span<const int32_t> ids, bool skip_special, bool final,
                              uint32_t* state, std::string* out) const;

  SpecialTokens special_;
  std::string chat_template_;
};

// Turns a stream of ids into text as it arrives without ever emitting a partial UTF-8
// sequence: bytes of an unfinished character are held back until a later token completes it.
// The concatenation of every Push() result and Finish() equals
// tokenizer.Decode(all ids, skip_special).
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special);
  // Text completed by `id` (possibly empty).
  std::string Push(int32_t id);
  // Whatever is still held back (an unfinished sequence becomes U+FFFD).
  std::string Finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // pushed ids whose text is still held back
  size_t emitted_bytes_ = 0;  // total bytes returned so far
  uint32_t state_ = 0;        // Tokenizer::DecodePrefix's state
};

}  // namespace t2::tokenizer
