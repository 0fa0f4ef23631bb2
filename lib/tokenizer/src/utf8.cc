#include "utf8.h"

namespace t2::tokenizer::internal {
namespace {

// The number of bytes a sequence starting with `lead` must have, or 0 if `lead` cannot start
// one (a continuation byte, C0/C1, F5..FF).
int SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether `byte` may follow `lead` as the first continuation byte (Unicode Table 3-7: no
// overlongs, no surrogates, nothing above U+10FFFF).
bool ValidSecondByte(uint8_t lead, uint8_t byte) {
  switch (lead) {
    case 0xE0:
      return byte >= 0xA0 && byte <= 0xBF;
    case 0xED:
      return byte >= 0x80 && byte <= 0x9F;
    case 0xF0:
      return byte >= 0x90 && byte <= 0xBF;
    case 0xF4:
      return byte >= 0x80 && byte <= 0x8F;
    default:
      return byte >= 0x80 && byte <= 0xBF;
  }
}

// Scans the sequence starting at bytes[pos]. Returns the number of bytes of its valid part
// and sets *complete when those bytes form a whole character.
size_t ScanSequence(std::string_view bytes, size_t pos, bool* complete) {
  const auto lead = static_cast<uint8_t>(bytes[pos]);
  const int need = SequenceLength(lead);
  *complete = false;
  if (need == 0) return 0;
  if (need == 1) {
    *complete = true;
    return 1;
  }
  size_t n = 1;
  while (n < static_cast<size_t>(need) && pos + n < bytes.size()) {
    const auto b = static_cast<uint8_t>(bytes[pos + n]);
    const bool ok = n == 1 ? ValidSecondByte(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return n;
    ++n;
  }
  *complete = n == static_cast<size_t>(need);
  return n;
}

}  // namespace

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t Utf8CharLen(std::string_view text, size_t pos) {
  bool complete = false;
  const size_t n = ScanSequence(text, pos, &complete);
  return complete ? n : 1;
}

char32_t DecodeUtf8At(std::string_view text, size_t pos, size_t* len) {
  *len = Utf8CharLen(text, pos);
  const auto b0 = static_cast<uint8_t>(text[pos]);
  if (*len == 1) return b0;
  char32_t cp = b0 & (0xFF >> (*len + 1));
  for (size_t i = 1; i < *len; ++i) cp = (cp << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
  return cp;
}

bool IsValidUtf8(std::string_view bytes) {
  for (size_t pos = 0; pos < bytes.size();) {
    bool complete = false;
    const size_t n = ScanSequence(bytes, pos, &complete);
    if (!complete) return false;
    pos += n;
  }
  return true;
}

std::string LossyUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    bool complete = false;
    const size_t n = ScanSequence(bytes, pos, &complete);
    if (complete) {
      out.append(bytes.substr(pos, n));
      pos += n;
    } else {
      // A maximal invalid subpart (at least one byte) becomes one replacement character.
      out.append(kReplacementChar);
      pos += n == 0 ? 1 : n;
    }
  }
  return out;
}

size_t SettledUtf8Prefix(std::string_view bytes) {
  // Only the last (at most 3) bytes can belong to an unfinished sequence.
  const size_t back = bytes.size() < 3 ? bytes.size() : 3;
  for (size_t pos = bytes.size() - back; pos < bytes.size(); ++pos) {
    const auto b = static_cast<uint8_t>(bytes[pos]);
    if (SequenceLength(b) < 2) continue;
    bool complete = false;
    const size_t n = ScanSequence(bytes, pos, &complete);
    // A valid-so-far sequence that runs to the end may still be completed.
    if (!complete && pos + n == bytes.size()) return pos;
  }
  return bytes.size();
}

}  // namespace t2::tokenizer::internal
