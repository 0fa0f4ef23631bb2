#include "added_tokens.h"

#include <algorithm>

#include "t2/common/status.h"
#include "utf8.h"

namespace t2::tokenizer::internal {
namespace {

bool IsWhiteSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Start of the whitespace run that ends at `end`.
size_t WhiteSpaceRunBefore(std::string_view text, size_t end) {
  size_t pos = end;
  while (pos > 0) {
    size_t start = pos - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    size_t len = 0;
    if (!IsWhiteSpace(DecodeUtf8At(text, start, &len))) break;
    pos = start;
  }
  return pos;
}

// End of the whitespace run that starts at `begin`.
size_t WhiteSpaceRunAfter(std::string_view text, size_t begin) {
  size_t pos = begin;
  while (pos < text.size()) {
    size_t len = 0;
    if (!IsWhiteSpace(DecodeUtf8At(text, pos, &len))) break;
    pos += len;
  }
  return pos;
}

}  // namespace

absl::StatusOr<AddedTokenMatcher> AddedTokenMatcher::Create(std::vector<AddedToken> tokens) {
  AddedTokenMatcher m;
  std::erase_if(tokens, [](const AddedToken& t) { return t.content.empty(); });
  m.tokens_ = std::move(tokens);
  m.by_first_byte_.resize(256);
  for (size_t i = 0; i < m.tokens_.size(); ++i) {
    m.by_first_byte_[static_cast<uint8_t>(m.tokens_[i].content[0])].push_back(static_cast<int>(i));
  }
  for (auto& list : m.by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](int a, int b) {
      return m.tokens_[a].content.size() > m.tokens_[b].content.size();
    });
  }
  T2_ASSIGN_OR_RETURN(m.word_char_, Regex::Compile(R"(\w)"));
  return m;
}

std::vector<AddedTokenMatcher::Segment> AddedTokenMatcher::Split(std::string_view text) const {
  std::vector<Segment> segments;
  auto is_word_char = [&](size_t pos) {
    const size_t len = Utf8CharLen(text, pos);
    return !word_char_->FindAll(text.substr(pos, len)).empty();
  };
  size_t emitted = 0;  // end of the last segment pushed
  size_t pos = 0;
  while (pos < text.size()) {
    int found = -1;
    for (int index : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (text.substr(pos).starts_with(tokens_[index].content)) {
        found = index;
        break;
      }
    }
    if (found < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[found];
    size_t start = pos;
    size_t stop = pos + token.content.size();
    pos = stop;  // Discarded or not, the scan resumes after this match.
    if (token.single_word) {
      bool start_ok = start == 0;
      if (!start_ok) {
        size_t before = start - 1;
        while (before > 0 && (static_cast<uint8_t>(text[before]) & 0xC0) == 0x80) --before;
        start_ok = !is_word_char(before);
      }
      const bool stop_ok = stop == text.size() || !is_word_char(stop);
      if (!start_ok || !stop_ok) continue;
    }
    if (token.lstrip) start = std::max(WhiteSpaceRunBefore(text, start), emitted);
    if (token.rstrip) stop = WhiteSpaceRunAfter(text, stop);
    if (emitted < start) segments.push_back({emitted, start, -1});
    segments.push_back({start, stop, token.id});
    emitted = stop;
    pos = std::max(pos, stop);
  }
  if (emitted < text.size()) segments.push_back({emitted, text.size(), -1});
  return segments;
}

}  // namespace t2::tokenizer::internal
