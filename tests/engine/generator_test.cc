// The generator on the default model: greedy output equal to transformers' (through the
// engine's tokenizer-free path), batched equal to unbatched, stops, streaming and validation.
#include "t2/engine/generator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/reference_data.h"

namespace t2::engine {
namespace {

using ::testing::HasSubstr;
using t2::testing::FixturesDir;
using t2::testing::ReadJson;

class GeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto g = Generator::Create(
        {.model = t2::testing::DefaultModelPath(), .device = t2::model::DeviceSpec::Cpu()});
    ASSERT_TRUE(g.ok()) << g.status();
    generator_ = g->release();
  }
  static void TearDownTestSuite() {
    delete generator_;
    generator_ = nullptr;
  }
  static GenerationRequest Greedy(std::vector<int32_t> ids, int32_t max_new) {
    GenerationRequest r;
    r.prompt_ids = std::move(ids);
    r.max_new_tokens = max_new;
    return r;
  }
  std::vector<int32_t> Encode(const std::string& text) { return generator_->tokenizer().Encode(text, false); }
  static Generator* generator_;
};
Generator* GeneratorTest::generator_ = nullptr;

TEST_F(GeneratorTest, GreedyMatchesTransformersGenerate) {
  ASSERT_NE(generator_, nullptr);
  auto manifest = ReadJson(FixturesDir("model/gguf") / "manifest.json");
  std::vector<GenerationRequest> requests;
  std::vector<std::vector<int32_t>> expected;
  for (const auto& c : manifest["greedy"]) {
    requests.push_back(Greedy(c["prompt_ids"].get<std::vector<int32_t>>(), 64));
    expected.push_back(c["output_ids"].get<std::vector<int32_t>>());
  }
  ASSERT_GE(requests.size(), 8u);
  // All chat prompts in one batch (different lengths) and each alone give HF's tokens.
  auto batched = generator_->Generate(requests);
  ASSERT_TRUE(batched.ok()) << batched.status();
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ((*batched)[i].token_ids, expected[i]) << "batched request " << i;
    auto alone = generator_->Generate(std::span(&requests[i], 1));
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_EQ((*alone)[0].token_ids, (*batched)[i].token_ids) << "request " << i << " alone vs batched";
    EXPECT_EQ((*alone)[0].text, (*batched)[i].text);
  }
}

TEST_F(GeneratorTest, BatchedEqualsUnbatchedForSampledRequestsWithSeeds) {
  ASSERT_NE(generator_, nullptr);
  std::vector<GenerationRequest> requests;
  for (const char* p : {"The sea is", "My favourite number is", "def add(a, b):", "Paris is the capital of"}) {
    GenerationRequest r = Greedy(Encode(p), 24);
    r.sampling = {.temperature = 0.9f, .top_k = 40, .top_p = 0.95f, .seed = 1234};
    r.ignore_eos = true;
    requests.push_back(r);
  }
  auto batched = generator_->Generate(requests);
  ASSERT_TRUE(batched.ok()) << batched.status();
  for (size_t i = 0; i < requests.size(); ++i) {
    auto alone = generator_->Generate(std::span(&requests[i], 1));
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*alone)[0].token_ids, (*batched)[i].token_ids) << "request " << i;
    EXPECT_EQ((*batched)[i].token_ids.size(), 24u);
    EXPECT_EQ((*batched)[i].finish_reason, FinishReason::kLength);
  }
}

TEST_F(GeneratorTest, StreamedTextEqualsResultAndLogprobsAreReturned) {
  ASSERT_NE(generator_, nullptr);
  GenerationRequest r = Greedy(Encode("Emoji: 🚀 and café. Count: 1 2 3"), 32);
  r.return_logprobs = true;
  std::string streamed;
  auto result = generator_->Generate(std::span(&r, 1), [&](size_t index, std::string_view text) {
    EXPECT_EQ(index, 0u);
    streamed += text;
  });
  ASSERT_TRUE(result.ok()) << result.status();
  const auto& out = (*result)[0];
  EXPECT_EQ(streamed, out.text);
  EXPECT_EQ(out.text, generator_->tokenizer().Decode(out.token_ids, true));
  ASSERT_EQ(out.logprobs.size(), out.token_ids.size());
  for (float lp : out.logprobs) EXPECT_LE(lp, 0.0f);
  EXPECT_EQ(out.prompt_tokens, static_cast<int64_t>(r.prompt_ids.size()));
}

TEST_F(GeneratorTest, StopStringCutsTheTextAndEndsTheRequest) {
  ASSERT_NE(generator_, nullptr);
  GenerationRequest free_run = Greedy(Encode("1, 2, 3, 4, 5,"), 20);
  free_run.ignore_eos = true;
  auto full = generator_->Generate(std::span(&free_run, 1));
  ASSERT_TRUE(full.ok());
  const std::string text = (*full)[0].text;
  ASSERT_GE(text.size(), 6u);
  // Stop at the second character that appears in the free-running text.
  std::string stop = text.substr(3, 2);
  GenerationRequest stopped = free_run;
  stopped.stop_strings = {stop};
  std::string streamed;
  auto cut = generator_->Generate(std::span(&stopped, 1), [&](size_t, std::string_view t) { streamed += t; });
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ((*cut)[0].finish_reason, FinishReason::kStopString);
  EXPECT_EQ((*cut)[0].text, text.substr(0, text.find(stop)));
  EXPECT_EQ(streamed, (*cut)[0].text);
  EXPECT_LT((*cut)[0].token_ids.size(), 20u);
}

TEST_F(GeneratorTest, InvalidRequestsAreRejectedNamingTheField) {
  ASSERT_NE(generator_, nullptr);
  const int64_t context = generator_->config().max_position_embeddings;
  const int32_t vocab = static_cast<int32_t>(generator_->config().vocab_size);
  struct Case {
    GenerationRequest request;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({Greedy({}, 4), "prompt: empty"});
  cases.push_back({Greedy({1, vocab}, 4), "prompt_ids[1]"});
  cases.push_back({Greedy({1, -3}, 4), "prompt_ids[1]"});
  cases.push_back({Greedy({1, 2}, 0), "max_new_tokens"});
  cases.push_back({Greedy({1, 2}, static_cast<int32_t>(context) - 1), "exceeds the context"});
  GenerationRequest bad_sampling = Greedy({1, 2}, 4);
  bad_sampling.sampling.top_p = 0;
  cases.push_back({bad_sampling, "sampling.top_p"});
  GenerationRequest many_stops = Greedy({1, 2}, 4);
  many_stops.stop_strings.assign(kMaxStopStrings + 1, "x");
  cases.push_back({many_stops, "stop_strings"});
  GenerationRequest empty_stop = Greedy({1, 2}, 4);
  empty_stop.stop_strings = {"ok", ""};
  cases.push_back({empty_stop, "stop_strings[1]"});
  GenerationRequest long_stop = Greedy({1, 2}, 4);
  long_stop.stop_strings = {"ok", std::string(kMaxStopStringBytes + 1, 'x')};
  cases.push_back({long_stop, "stop_strings[1]: 257 bytes, at most 256"});
  for (const auto& c : cases) {
    auto status = generator_->ValidateRequest(c.request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
  // At the limit is fine; one past it is not.
  EXPECT_TRUE(generator_->ValidateRequest(Greedy({1, 2}, static_cast<int32_t>(context) - 2)).ok());
  GenerationRequest longest_stop = Greedy({1, 2}, 4);
  longest_stop.stop_strings = {std::string(kMaxStopStringBytes, 'x')};
  EXPECT_TRUE(generator_->ValidateRequest(longest_stop).ok());
  // A batch with one bad request runs nothing and names the request.
  std::vector<GenerationRequest> batch = {Greedy({1, 2}, 2), Greedy({}, 2)};
  auto result = generator_->Generate(batch);
  EXPECT_THAT(result.status().message(), HasSubstr("request 1: prompt: empty"));
}

}  // namespace
}  // namespace t2::engine
