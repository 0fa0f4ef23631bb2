// GPT-2's reversible mapping of bytes onto printable Unicode characters ("Ġ" for a space),
// the alphabet byte-level BPE vocabularies are spelled in.
#pragma once

#include <string>
#include <string_view>

namespace t2::tokenizer::internal {

// Each byte of `bytes` as its byte-level character (UTF-8 encoded).
std::string BytesToByteLevel(std::string_view bytes);

// Appends the bytes a token stands for: its characters mapped back through the byte-level
// alphabet, or, when any character lies outside it (an added token such as "<｜end｜>"), the
// token's own UTF-8 text, as HF's ByteLevel decoder does.
void AppendByteLevelToken(std::string_view token, std::string* out);

// Whether every character of `token` belongs to the byte-level alphabet.
bool IsByteLevelSpelled(std::string_view token);

}  // namespace t2::tokenizer::internal
