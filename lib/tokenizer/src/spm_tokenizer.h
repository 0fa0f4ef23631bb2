// SentencePiece-style BPE (Llama-2, Mistral): spaces written as "▁", a "▁" prepended to the
// text, merges over characters with byte-token fallback (<0xE2>); decoding turns "▁" back
// into spaces, fuses byte tokens into UTF-8 and drops the prepended space.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpe_tokenizer.h"

namespace t2::tokenizer::internal {

inline constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// The normalizer, pre-tokenizer and decoder of a SentencePiece BPE tokenizer, as HF
// tokenizers describes them.
struct SpmConfig {
  // Normalizer: Prepend (only to non-empty text) and Replace steps, applied in order.
  struct NormalizerStep {
    bool prepend = false;  // true: prepend `content`; false: replace `pattern` by `content`
    std::string pattern;
    std::string content;
  };
  std::vector<NormalizerStep> normalizer;

  // Metaspace pre-tokenizer (when `metaspace`): spaces become `replacement`, which is
  // prepended per `prepend`; `split` cuts before each replacement character.
  enum class Prepend { kNever, kFirst, kAlways };
  bool metaspace = false;
  std::string replacement = std::string(kMetaspace);
  Prepend prepend = Prepend::kFirst;
  bool split = false;

  // Decoder steps, applied in order to the list of token strings.
  struct DecoderStep {
    enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
    Kind kind = Kind::kFuse;
    std::string pattern;      // kReplace: from; kStrip: the character; kMetaspace: replacement
    std::string content;      // kReplace: to
    int start = 0;            // kStrip: at most this many leading characters
    int stop = 0;             // kStrip: at most this many trailing characters
    bool drop_first = false;  // kMetaspace: the first token loses its replacement characters

    static DecoderStep Of(Kind kind, std::string pattern = "", std::string content = "",
                          int start = 0) {
      DecoderStep d;
      d.kind = kind;
      d.pattern = std::move(pattern);
      d.content = std::move(content);
      d.start = start;
      return d;
    }
  };
  std::vector<DecoderStep> decoder;

  // transformers' LlamaTokenizer (and llama.cpp's SentencePiece vocabularies):
  // Metaspace(prepend first, no split); Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1).
  static SpmConfig Llama(bool add_space_prefix);
};

class SpmTokenizer final : public BpeTokenizer {
 public:
  // UnimplementedError for decoder sequences that cannot be streamed (a Metaspace decoder or
  // a right Strip after Fuse).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(BpeTokenizerParts parts,
                                                           SpmConfig config);

 protected:
  void EncodeText(std::string_view text, size_t begin, std::vector<int32_t>* out) const override;
  size_t DecodePrefix(std::span<const int32_t> ids, bool skip_special, bool final, uint32_t* state,
                      std::string* out) const override;

 private:
  SpmTokenizer(BpeModel model, SpmConfig config)
      : BpeTokenizer(std::move(model)), config_(std::move(config)) {}
  std::string Normalize(std::string_view text) const;
  void EncodePiece(std::string_view piece, size_t begin, std::vector<int32_t>* out) const;
  // Runs the decoder steps over `tokens`, one chunk of a stream.
  std::string RunDecoder(std::vector<std::string> tokens, uint32_t* state) const;

  SpmConfig config_;
  bool has_byte_fallback_ = false;
};

}  // namespace t2::tokenizer::internal
