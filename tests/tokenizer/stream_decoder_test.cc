// StreamDecoder: pushing ids one at a time yields exactly Decode(all ids), in pieces that are
// each valid UTF-8.
#include <gtest/gtest.h>

#include <random>

#include "fixtures.h"

namespace t2::tokenizer::testing {
namespace {

// Strict UTF-8 validation (no overlongs, surrogates or code points above U+10FFFF).
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return false;
    }
    i += n + 1;
  }
  return true;
}

// Streams `ids` and checks the pieces against Decode. Returns false after a failure.
bool CheckStream(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip,
                 const std::string& what) {
  StreamDecoder decoder(t, skip);
  std::string all;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = decoder.Push(ids[i]);
    if (!ValidUtf8(piece)) {
      ADD_FAILURE() << what << ": push " << i << " yielded invalid UTF-8";
      return false;
    }
    all += piece;
  }
  const std::string rest = decoder.Finish();
  if (!ValidUtf8(rest)) {
    ADD_FAILURE() << what << ": Finish yielded invalid UTF-8";
    return false;
  }
  all += rest;
  const std::string expected = t.Decode(ids, skip);
  if (all != expected) {
    ADD_FAILURE() << what << " skip_special=" << skip << "\n  streamed "
                  << nlohmann::json(all).dump() << "\n  decoded  "
                  << nlohmann::json(expected).dump();
    return false;
  }
  return true;
}

class StreamDecoderTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamDecoderTest, EqualsDecodeOnEveryString) {
  const Tokenizer* t = Load(GetParam());
  ASSERT_NE(t, nullptr);
  const auto ref = ReadJson(FixturesDir() / (GetParam() + ".ref.json"));
  for (size_t i = 0; i < Strings().size(); ++i) {
    const auto ids = ref["ids"][i].get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      if (!CheckStream(*t, ids, skip, "string " + std::to_string(i))) return;
    }
  }
}

TEST_P(StreamDecoderTest, EqualsDecodeOnRandomIds) {
  // Random sequences weighted towards tokens that are not whole characters (byte tokens, and
  // byte-level tokens holding part of a character), specials and ids outside the vocabulary.
  const Tokenizer* t = Load(GetParam());
  ASSERT_NE(t, nullptr);
  std::vector<int32_t> partial, control;
  for (int32_t id = 0; id < t->vocab_size(); ++id) {
    const int32_t one[] = {id};
    if (t->Decode(one, false).find("\xEF\xBF\xBD") != std::string::npos) partial.push_back(id);
    if (t->IsControl(id)) control.push_back(id);
  }
  ASSERT_FALSE(partial.empty());
  std::mt19937 rng(1234);
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> ids(1 + rng() % 40);
    for (auto& id : ids) {
      const unsigned kind = rng() % 10;
      if (kind < 5) {
        id = partial[rng() % partial.size()];
      } else if (kind < 6 && !control.empty()) {
        id = control[rng() % control.size()];
      } else if (kind < 7) {
        id = t->vocab_size() + static_cast<int32_t>(rng() % 3);
      } else {
        id = static_cast<int32_t>(rng() % t->vocab_size());
      }
    }
    for (bool skip : {false, true}) {
      if (!CheckStream(*t, ids, skip, "round " + std::to_string(round))) return;
    }
  }
}

TEST_P(StreamDecoderTest, HoldsAnUnfinishedCharacterBack) {
  const Tokenizer* t = Load(GetParam());
  ASSERT_NE(t, nullptr);
  // A 4-byte character split over several tokens comes out whole with its last token.
  const auto ids = t->Encode("x🦀", false);
  StreamDecoder decoder(*t, false);
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = decoder.Push(ids[i]);
    if (i + 1 < ids.size()) {
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);
    }
    text += piece;
  }
  text += decoder.Finish();
  EXPECT_EQ(text, t->Decode(ids, false));
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, StreamDecoderTest, ::testing::ValuesIn(AllTokenizerNames()),
                         [](const auto& info) { return info.param; });

TEST(StreamDecoderEdgeTest, UnfinishedCharacterAtTheEndBecomesReplacement) {
  const Tokenizer* t = Load("smollm_gguf");
  ASSERT_NE(t, nullptr);
  // The first token of "🦀" alone: Finish flushes it as U+FFFD, as Decode does.
  const auto ids = t->Encode("🦀", false);
  ASSERT_GT(ids.size(), 1u);
  StreamDecoder decoder(*t, false);
  EXPECT_EQ(decoder.Push(ids[0]), "");
  EXPECT_EQ(decoder.Finish(), t->Decode(std::span(ids).first(1), false));
}

}  // namespace
}  // namespace t2::tokenizer::testing
