#include "byte_level.h"

#include <array>
#include <cstdint>

#include "utf8.h"

namespace t2::tokenizer::internal {
namespace {

struct Tables {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, 512> char_to_byte{};  // -1: not in the alphabet
  std::array<std::string, 256> byte_to_utf8;
};

// Printable Latin-1 bytes map to themselves; the rest (controls, space, 0x7F..0xA0, 0xAD)
// to U+0100 upwards in byte order.
const Tables& GetTables() {
  static const Tables tables = [] {
    Tables t;
    t.char_to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = printable ? static_cast<char32_t>(b) : next++;
      t.byte_to_char[b] = c;
      t.char_to_byte[c] = static_cast<int16_t>(b);
      AppendUtf8(c, &t.byte_to_utf8[b]);
    }
    return t;
  }();
  return tables;
}

// Decodes the character at text[pos] (valid UTF-8 of at most 2 bytes for the alphabet);
// returns its byte value or -1, and sets *len.
int AlphabetByteAt(std::string_view text, size_t pos, size_t* len) {
  const Tables& t = GetTables();
  const auto c0 = static_cast<uint8_t>(text[pos]);
  if (c0 < 0x80) {
    *len = 1;
    return t.char_to_byte[c0];
  }
  *len = Utf8CharLen(text, pos);
  if (*len != 2) return -1;
  const auto c1 = static_cast<uint8_t>(text[pos + 1]);
  const char32_t cp = ((c0 & 0x1F) << 6) | (c1 & 0x3F);
  return cp < 512 ? t.char_to_byte[cp] : -1;
}

}  // namespace

std::string BytesToByteLevel(std::string_view bytes) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out.append(t.byte_to_utf8[static_cast<uint8_t>(c)]);
  return out;
}

bool IsByteLevelSpelled(std::string_view token) {
  for (size_t pos = 0; pos < token.size();) {
    size_t len = 0;
    if (AlphabetByteAt(token, pos, &len) < 0) return false;
    pos += len;
  }
  return true;
}

void AppendByteLevelToken(std::string_view token, std::string* out) {
  if (!IsByteLevelSpelled(token)) {
    out->append(token);
    return;
  }
  for (size_t pos = 0; pos < token.size();) {
    size_t len = 0;
    out->push_back(static_cast<char>(AlphabetByteAt(token, pos, &len)));
    pos += len;
  }
}

}  // namespace t2::tokenizer::internal
