#include <string>

#include "t2/tokenizer/tokenizer.h"
#include "utf8.h"

namespace t2::tokenizer {

size_t Tokenizer::DecodePrefix(std::span<const int32_t> ids, bool skip_special, bool final,
                               uint32_t* state, std::string* out) const {
  // Tokenizers without their own hook: decode what is held and wait while it ends in U+FFFD,
  // the mark of a character not finished yet.
  std::string text = Decode(ids, skip_special);
  if (!final && text.ends_with(internal::kReplacementChar)) return 0;
  out->append(text);
  return ids.size();
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::Push(int32_t id) {
  ids_.push_back(id);
  std::string out;
  const size_t used = tokenizer_.DecodePrefix(ids_, skip_special_, /*final=*/false, &state_, &out);
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(used));
  emitted_bytes_ += out.size();
  return out;
}

std::string StreamDecoder::Finish() {
  std::string out;
  tokenizer_.DecodePrefix(ids_, skip_special_, /*final=*/true, &state_, &out);
  ids_.clear();
  emitted_bytes_ += out.size();
  return out;
}

}  // namespace t2::tokenizer
