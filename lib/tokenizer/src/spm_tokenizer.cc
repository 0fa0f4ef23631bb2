#include "spm_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "t2/common/status.h"
#include "utf8.h"

namespace t2::tokenizer::internal {
namespace {

// State bits carried between DecodePrefix calls of one stream.
constexpr uint32_t kFirstTokenDone = 1;  // a Metaspace decoder step has seen its first token
constexpr uint32_t kStripDone = 2;       // the leading Strip after Fuse has finished
constexpr uint32_t kStripShift = 8;      // characters stripped so far

std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(text);
  return absl::StrReplaceAll(AsAbsl(text), {{AsAbsl(from), AsAbsl(to)}});
}

// HF ByteFallback's test: a token spelled "<0xHH>".
int ByteTokenValue(std::string_view token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Strips up to `start` leading and `stop` trailing `c` characters (HF Strip on one token).
std::string StripToken(std::string_view token, std::string_view c, int start, int stop) {
  if (c.empty()) return std::string(token);
  for (int i = 0; i < start && token.starts_with(c); ++i) token.remove_prefix(c.size());
  for (int i = 0; i < stop && token.ends_with(c); ++i) token.remove_suffix(c.size());
  return std::string(token);
}

// HF ByteFallback: each run of byte tokens becomes one string, or one U+FFFD per byte when
// the run is not valid UTF-8; other tokens pass through.
std::vector<std::string> DecodeByteTokens(std::vector<std::string> tokens) {
  std::vector<std::string> next;
  std::string run;
  size_t run_len = 0;
  auto flush = [&] {
    if (run_len == 0) return;
    if (IsValidUtf8(run)) {
      next.push_back(run);
    } else {
      for (size_t i = 0; i < run_len; ++i) next.emplace_back(kReplacementChar);
    }
    run.clear();
    run_len = 0;
  };
  for (auto& t : tokens) {
    const int b = ByteTokenValue(t);
    if (b >= 0) {
      run.push_back(static_cast<char>(b));
      ++run_len;
    } else {
      flush();
      next.push_back(std::move(t));
    }
  }
  flush();
  return next;
}

// A Strip step after Fuse: the leading strip of the whole stream's text, continued across
// calls through `state` (kStripDone, and the count stripped so far above kStripShift).
void StripStreamStart(const SpmConfig::DecoderStep& step, std::string* text, uint32_t* state) {
  if ((*state & kStripDone) || step.pattern.empty()) return;
  std::string_view t = *text;
  uint32_t stripped = *state >> kStripShift;
  while (static_cast<int>(stripped) < step.start && t.starts_with(step.pattern)) {
    t.remove_prefix(step.pattern.size());
    ++stripped;
  }
  if (!t.empty() || static_cast<int>(stripped) >= step.start) *state |= kStripDone;
  *state = (*state & ((1u << kStripShift) - 1)) | (stripped << kStripShift);
  *text = std::string(t);
}

}  // namespace

SpmConfig SpmConfig::Llama(bool add_space_prefix) {
  using Kind = DecoderStep::Kind;
  SpmConfig c;
  c.metaspace = true;
  c.prepend = add_space_prefix ? Prepend::kFirst : Prepend::kNever;
  c.decoder.push_back(DecoderStep::Of(Kind::kReplace, std::string(kMetaspace), " "));
  c.decoder.push_back(DecoderStep::Of(Kind::kByteFallback));
  c.decoder.push_back(DecoderStep::Of(Kind::kFuse));
  if (add_space_prefix) c.decoder.push_back(DecoderStep::Of(Kind::kStrip, " ", "", 1));
  return c;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> SpmTokenizer::Create(BpeTokenizerParts parts,
                                                                SpmConfig config) {
  using Kind = SpmConfig::DecoderStep::Kind;
  bool fused = false;
  bool byte_fallback = false;
  for (const auto& step : config.decoder) {
    if (step.kind == Kind::kFuse) fused = true;
    if (step.kind == Kind::kByteFallback) byte_fallback = true;
    if (fused && (step.kind == Kind::kMetaspace || (step.kind == Kind::kStrip && step.stop > 0))) {
      return absl::UnimplementedError(
          "decoder: a Metaspace step or a right Strip after Fuse is not supported");
    }
  }
  std::unique_ptr<SpmTokenizer> t(new SpmTokenizer(std::move(parts.model), std::move(config)));
  t->has_byte_fallback_ = byte_fallback;
  SpmTokenizer* raw = t.get();
  T2_RETURN_IF_ERROR(t->Init(
      std::move(parts), raw->config_.normalizer.empty()
                            ? std::function<std::string(std::string_view)>()
                            : [raw](std::string_view s) { return raw->Normalize(s); }));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

std::string SpmTokenizer::Normalize(std::string_view text) const {
  std::string s(text);
  for (const auto& step : config_.normalizer) {
    if (step.prepend) {
      if (!s.empty()) s.insert(0, step.content);
    } else {
      s = ReplaceAll(s, step.pattern, step.content);
    }
  }
  return s;
}

void SpmTokenizer::EncodeText(std::string_view text, size_t begin,
                              std::vector<int32_t>* out) const {
  auto encode = [&](std::string_view piece, size_t offset) { EncodePiece(piece, offset, out); };
  if (config_.normalizer.empty()) {
    SplitNormalized(text, begin, out, encode);
  } else {
    const std::string normalized = Normalize(text);
    SplitNormalized(normalized, begin, out, encode);
  }
}

void SpmTokenizer::EncodePiece(std::string_view piece, size_t begin,
                               std::vector<int32_t>* out) const {
  if (piece.empty()) return;
  if (!config_.metaspace) {
    model_.Encode(piece, out);
    return;
  }
  const std::string& rep = config_.replacement;
  std::string s = ReplaceAll(piece, " ", rep);
  const bool prepend = config_.prepend == SpmConfig::Prepend::kAlways ||
                       (config_.prepend == SpmConfig::Prepend::kFirst && begin == 0);
  if (prepend && !std::string_view(s).starts_with(rep)) s.insert(0, rep);
  if (!config_.split || rep.empty()) {
    model_.Encode(s, out);
    return;
  }
  // Each replacement character opens a new word.
  size_t start = 0;
  for (size_t pos = s.find(rep, 1); pos != std::string::npos; pos = s.find(rep, pos + rep.size())) {
    if (pos > start) model_.Encode(std::string_view(s).substr(start, pos - start), out);
    start = pos;
  }
  model_.Encode(std::string_view(s).substr(start), out);
}

size_t SpmTokenizer::DecodePrefix(std::span<const int32_t> ids, bool skip_special, bool final,
                                  uint32_t* state, std::string* out) const {
  // A run of byte tokens decodes as a whole (into U+FFFD per byte if it is not valid UTF-8),
  // so a trailing run is held until a token of another kind closes it.
  std::vector<std::string> tokens;
  size_t used = 0;
  size_t kept = 0;  // tokens[0, kept) are decoded now
  for (size_t i = 0; i < ids.size(); ++i) {
    if (Skipped(ids[i], skip_special)) {
      if (kept == tokens.size()) used = i + 1;
      continue;
    }
    tokens.push_back(*TokenString(ids[i]));
    if (final || !has_byte_fallback_ || ByteTokenValue(tokens.back()) < 0) {
      kept = tokens.size();
      used = i + 1;
    }
  }
  if (final) used = ids.size();
  tokens.resize(kept);
  out->append(RunDecoder(std::move(tokens), state));
  return used;
}

std::string SpmTokenizer::RunDecoder(std::vector<std::string> tokens, uint32_t* state) const {
  using Kind = SpmConfig::DecoderStep::Kind;
  if (tokens.empty()) return "";
  bool fused = false;
  for (const auto& step : config_.decoder) {
    switch (step.kind) {
      case Kind::kReplace:
        for (auto& t : tokens) t = ReplaceAll(t, step.pattern, step.content);
        break;
      case Kind::kByteFallback:
        tokens = DecodeByteTokens(std::move(tokens));
        break;
      case Kind::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.clear();
        tokens.push_back(std::move(all));
        fused = true;
        break;
      }
      case Kind::kStrip:
        if (!fused) {
          for (auto& t : tokens) t = StripToken(t, step.pattern, step.start, step.stop);
          break;
        }
        StripStreamStart(step, &tokens[0], state);
        break;
      case Kind::kMetaspace:
        for (auto& t : tokens) {
          const bool first = !(*state & kFirstTokenDone);
          *state |= kFirstTokenDone;
          t = ReplaceAll(t, step.pattern, first && step.drop_first ? "" : " ");
        }
        break;
    }
  }
  std::string text;
  for (const auto& t : tokens) text += t;
  return text;
}

}  // namespace t2::tokenizer::internal
