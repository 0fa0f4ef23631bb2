#include "byte_level_tokenizer.h"

#include <functional>

#include "byte_level.h"
#include "t2/common/status.h"
#include "utf8.h"

namespace t2::tokenizer::internal {

absl::StatusOr<std::unique_ptr<Tokenizer>> ByteLevelTokenizer::Create(
    BpeTokenizerParts parts, PreTokenizer pre_tokenizer, UnicodeNormalizer normalizer) {
  std::unique_ptr<ByteLevelTokenizer> t(new ByteLevelTokenizer(
      std::move(parts.model), std::move(pre_tokenizer), std::move(normalizer)));
  const ByteLevelTokenizer* raw = t.get();
  T2_RETURN_IF_ERROR(t->Init(
      std::move(parts), raw->normalizer_.empty()
                            ? std::function<std::string(std::string_view)>()
                            : [raw](std::string_view s) { return raw->normalizer_.Normalize(s); }));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

void ByteLevelTokenizer::EncodeText(std::string_view text, size_t begin,
                                    std::vector<int32_t>* out) const {
  auto encode = [&](std::string_view stretch, size_t) {
    for (const std::string& word : pre_.Split(stretch)) {
      model_.Encode(BytesToByteLevel(word), out);
    }
  };
  if (normalizer_.empty()) {
    SplitNormalized(text, begin, out, encode);
  } else {
    const std::string normalized = normalizer_.Normalize(text);
    SplitNormalized(normalized, begin, out, encode);
  }
}

size_t ByteLevelTokenizer::DecodePrefix(std::span<const int32_t> ids, bool skip_special, bool final,
                                        uint32_t* state, std::string* out) const {
  // Decoding is lossy UTF-8 over the concatenated bytes, so any cut where the bytes so far end
  // between characters is final.
  std::string bytes;
  size_t used = 0;
  size_t settled = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!Skipped(ids[i], skip_special)) AppendByteLevelToken(*TokenString(ids[i]), &bytes);
    if (final || SettledUtf8Prefix(bytes) == bytes.size()) {
      used = i + 1;
      settled = bytes.size();
    }
  }
  out->append(LossyUtf8(std::string_view(bytes).substr(0, settled)));
  return used;
}

}  // namespace t2::tokenizer::internal
