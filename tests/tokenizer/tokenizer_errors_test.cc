// Malformed inputs give a Status naming what is wrong; nothing aborts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fixtures.h"
#include "t2/formats/gguf.h"

namespace t2::tokenizer::testing {
namespace {

using ::testing::HasSubstr;

absl::Status LoadBadGguf(const std::string& name) {
  auto file = formats::GgufFile::Open(FixturesDir() / "bad_gguf" / (name + ".gguf"));
  if (!file.ok()) return file.status();
  return Tokenizer::FromGguf(*file).status();
}

TEST(GgufErrorsTest, NameTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"no_model", "tokenizer.ggml.model"},
      {"no_tokens", "tokenizer.ggml.tokens"},
      {"no_merges", "tokenizer.ggml.merges"},
      {"short_types", "tokenizer.ggml.token_type"},
      {"bos_out_of_range", "tokenizer.ggml.bos_token_id"},
      {"unknown_model", "tokenizer.ggml.model"},
      {"unknown_pre", "tokenizer.ggml.pre"},
      {"bad_merge", "merge 0"},
      {"spm_no_scores", "tokenizer.ggml.scores"},
  };
  for (const auto& [name, key] : cases) {
    const absl::Status s = LoadBadGguf(name);
    EXPECT_FALSE(s.ok()) << name;
    EXPECT_THAT(s.message(), HasSubstr(key)) << name;
  }
  EXPECT_TRUE(LoadBadGguf("ok").ok()) << LoadBadGguf("ok");
}

TEST(GgufErrorsTest, MinimalVocabularyWorks) {
  auto file = formats::GgufFile::Open(FixturesDir() / "bad_gguf" / "ok.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto t = Tokenizer::FromGguf(*file);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->Encode("ab<|end|>a", false), (std::vector<int32_t>{2, 3, 0}));
  EXPECT_EQ((*t)->special().stop_ids, (std::vector<int32_t>{3}));
  EXPECT_EQ((*t)->Decode(std::vector<int32_t>{2, 3, 0}, true), "aba");
}

absl::Status LoadJson(const std::string& tokenizer_json, const std::string& config = "") {
  return Tokenizer::FromHfJson(tokenizer_json, config).status();
}

TEST(HfJsonErrorsTest, NameTheField) {
  const std::string bl =
      R"("pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"})";
  const std::pair<std::string, const char*> cases[] = {
      {"not json", "tokenizer.json"},
      {"[]", "not an object"},
      {"{}", "model"},
      {R"({"model": {"type": "BPE"}})", "model.vocab"},
      {R"({"model": {"type": "WordPiece", "vocab": {}}})", "model.type"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 5}}})", "model.vocab"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}, )" + bl + "}",
       "merge 0"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})", "model.merges[0]"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"id": 1}]})",
       "added_tokens[0]"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "normalizer": {"type": "Lowercase"}, )" +
           bl + "}",
       "normalizer"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}, "decoder": {"type": "ByteLevel"}})",
       "pre_tokenizer[0]"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Whitespace"}, "decoder": {"type": "ByteLevel"}})",
       "pre_tokenizer[0]"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "decoder": {"type": "CTC"}})",
       "decoder[0]"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "unk_token": "<unk>"}})", "model.unk_token"},
  };
  for (const auto& [text, field] : cases) {
    const absl::Status s = LoadJson(text);
    EXPECT_FALSE(s.ok()) << text;
    EXPECT_THAT(s.message(), HasSubstr(field)) << text;
  }
  EXPECT_THAT(LoadJson(R"({"model": {"type": "BPE", "vocab": {"a": 0}}})", "{oops").message(),
              HasSubstr("tokenizer_config.json"));
}

// Found by tests/fuzz/tokenizer_json_fuzz.cc: these overflowed (UBSan), allocated gigabytes or
// ended the process through an uncaught nlohmann exception.
TEST(HfJsonErrorsTest, HostileValuesAreErrorsNotCrashes) {
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0}})";
  const std::pair<std::string, const char*> cases[] = {
      {"{" + model + R"(, "added_tokens": [{"id": 2147483647, "content": "x"}]})", "at most"},
      {"{" + model + R"(, "added_tokens": [{"id": 300000000, "content": "x"}]})", "at most"},
      {"{" + model + R"(, "added_tokens": [{"id": 1e300, "content": "x"}]})", "added_tokens[0].id"},
      {"{" + model + R"(, "post_processor": {"type": "Sequence", "processors": 7}})",
       "tokenizer.json"},
      {"{" + model +
           R"(, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": 3}}]}})",
       "tokenizer.json"},
  };
  for (const auto& [text, field] : cases) {
    const absl::Status s = LoadJson(text);
    EXPECT_FALSE(s.ok()) << text;
    EXPECT_THAT(s.message(), HasSubstr(field)) << text;
  }
  for (const char* config : {R"({"chat_template": [1]})",
                             R"({"chat_template": [{"name": "default", "template": 5}]})"}) {
    EXPECT_FALSE(LoadJson("{" + model + "}", config).ok()) << config;
  }
}

TEST(HfJsonErrorsTest, NormalizersOtherThanUnicodeFormsAreRefusedByName) {
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0}})";
  const std::string bl =
      R"("pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"})";
  auto with = [&](const std::string& normalizer, const std::string& pipeline) {
    return "{" + model + R"(, "normalizer": )" + normalizer + ", " + pipeline + "}";
  };
  struct Case {
    std::string json;
    std::vector<std::string> named;  // all in the message
  };
  const Case cases[] = {
      {with(R"({"type": "Lowercase"})", bl), {"normalizer[0]", "\"Lowercase\""}},
      {with(R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Strip"}]})", bl),
       {"normalizer[1]", "\"Strip\""}},
      {with(R"({"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Replace",
             "pattern": {"String": " "}, "content": "_"}]})",
            bl),
       {"normalizer[1]", "\"Replace\""}},
      // SentencePiece pipelines take Prepend and Replace only.
      {with(R"({"type": "NFC"})", R"("pre_tokenizer": {"type": "Metaspace"})"),
       {"normalizer[0]", "\"NFC\""}},
  };
  for (const Case& c : cases) {
    const absl::Status s = LoadJson(c.json);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << c.json << "\n" << s;
    for (const std::string& name : c.named) EXPECT_THAT(s.message(), HasSubstr(name)) << c.json;
  }
  for (const char* form : {"NFC", "NFD", "NFKC", "NFKD"}) {
    const std::string alone = with(absl::StrCat(R"({"type": ")", form, R"("})"), bl);
    EXPECT_TRUE(LoadJson(alone).ok()) << alone << "\n" << LoadJson(alone);
  }
  const std::string sequence =
      with(R"({"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "NFC"}]})", bl);
  EXPECT_TRUE(LoadJson(sequence).ok()) << LoadJson(sequence);
}

TEST(HfJsonErrorsTest, MissingDirectory) {
  auto t = Tokenizer::FromHfDir(FixturesDir() / "no-such-dir");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("tokenizer.json"));
}

}  // namespace
}  // namespace t2::tokenizer::testing
