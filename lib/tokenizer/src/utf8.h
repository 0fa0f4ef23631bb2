// UTF-8 helpers shared by the tokenizers and the stream decoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace t2::tokenizer::internal {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Appends the UTF-8 encoding of a Unicode scalar value.
void AppendUtf8(char32_t cp, std::string* out);

// Length in bytes of the character starting at text[pos] of valid UTF-8 (1 for a stray byte).
size_t Utf8CharLen(std::string_view text, size_t pos);

// The code point starting at text[pos] of valid UTF-8; its length in bytes goes to *len.
char32_t DecodeUtf8At(std::string_view text, size_t pos, size_t* len);

bool IsValidUtf8(std::string_view bytes);

// `bytes` with each maximal invalid subsequence replaced by U+FFFD, exactly as Rust's
// String::from_utf8_lossy and Python's bytes.decode("utf-8", "replace") do.
std::string LossyUtf8(std::string_view bytes);

// Length of the longest prefix of `bytes` after which a UTF-8 decoder is between characters:
// everything but a trailing lead byte whose continuation bytes, valid so far, have not all
// arrived. LossyUtf8(a + b) == LossyUtf8(a) + LossyUtf8(b) whenever a is such a prefix.
size_t SettledUtf8Prefix(std::string_view bytes);

}  // namespace t2::tokenizer::internal
