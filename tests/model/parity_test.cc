// The model against HF transformers: logits of the default GGUF (≤ 1e-3 in float32), greedy
// continuations of chat prompts (identical), and tiny random Llama / Mistral / Qwen2
// checkpoints that transformers saved itself (≤ 1e-4), through prefill, incremental decode
// and right-padded batches.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "testing/reference_data.h"
#include "t2/model/llama.h"

namespace t2::model {
namespace {

using t2::testing::FixturesDir;
using t2::testing::ReadFloats;
using t2::testing::ReadJson;

at::Tensor Tokens(const std::vector<int64_t>& ids) {
  return at::tensor(ids, at::kLong).view({1, static_cast<int64_t>(ids.size())});
}

float MaxAbsDiff(const at::Tensor& actual, const std::vector<float>& expected) {
  auto a = actual.contiguous();
  EXPECT_EQ(static_cast<size_t>(a.numel()), expected.size());
  const float* p = a.data_ptr<float>();
  float worst = 0;
  for (size_t i = 0; i < expected.size() && i < static_cast<size_t>(a.numel()); ++i) {
    worst = std::max(worst, std::abs(p[i] - expected[i]));
  }
  return worst;
}

std::unique_ptr<LlamaModel> LoadOrDie(const std::filesystem::path& path) {
  auto model = LlamaModel::Load(path, {.device = DeviceSpec::Cpu()});
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

TEST(TinyCheckpointParity, PrefillDecodeAndPaddedBatchMatchTransformers) {
  auto dir = FixturesDir("model/tiny");
  auto manifest = ReadJson(dir / "manifest.json");
  ASSERT_GE(manifest.size(), 5u);
  for (const auto& entry : manifest) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    auto model = LoadOrDie(dir / entry["dir"].get<std::string>());
    ASSERT_NE(model, nullptr);
    const int64_t vocab = model->config().vocab_size;
    std::vector<std::vector<int64_t>> all_ids;
    std::vector<std::vector<float>> all_ref;
    for (const auto& c : entry["cases"]) {
      auto ids = c["ids"].get<std::vector<int64_t>>();
      auto ref = ReadFloats(dir / entry["dir"].get<std::string>() / c["file"].get<std::string>());
      // Whole-sequence prefill.
      auto cache = model->NewCache(1, 64).value();
      auto logits = model->Forward(Tokens(ids), std::vector<int64_t>{(int64_t)ids.size()}, cache, true);
      ASSERT_TRUE(logits.ok()) << logits.status();
      EXPECT_LE(MaxAbsDiff(*logits, ref), 1e-4f) << "prefill of " << ids.size() << " tokens";
      // Incremental: half as prefill, then one token at a time through the KV cache.
      auto inc = model->NewCache(1, 64).value();
      size_t half = ids.size() / 2;
      std::vector<float> got;
      if (half > 0) {
        auto first = model->Forward(Tokens({ids.begin(), ids.begin() + half}),
                                    std::vector<int64_t>{(int64_t)half}, inc, true);
        ASSERT_TRUE(first.ok()) << first.status();
        auto f = first->contiguous();
        got.insert(got.end(), f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
      }
      for (size_t t = half; t < ids.size(); ++t) {
        auto step = model->Forward(Tokens({ids[t]}), std::vector<int64_t>{1}, inc, false);
        ASSERT_TRUE(step.ok()) << step.status();
        auto s = step->contiguous();
        got.insert(got.end(), s.data_ptr<float>(), s.data_ptr<float>() + vocab);
      }
      EXPECT_LE(MaxAbsDiff(at::tensor(got), ref), 1e-4f) << "incremental decode";
      all_ids.push_back(ids);
      all_ref.push_back(std::move(ref));
    }
    // All cases in one right-padded batch: each row equals its own reference.
    int64_t rows = static_cast<int64_t>(all_ids.size()), width = 0;
    for (auto& ids : all_ids) width = std::max<int64_t>(width, ids.size());
    auto tokens = at::zeros({rows, width}, at::kLong);
    std::vector<int64_t> lengths;
    for (int64_t b = 0; b < rows; ++b) {
      for (size_t t = 0; t < all_ids[b].size(); ++t) tokens[b][t] = all_ids[b][t];
      lengths.push_back(static_cast<int64_t>(all_ids[b].size()));
    }
    auto cache = model->NewCache(rows, 64).value();
    auto batched = model->Forward(tokens, lengths, cache, true);
    ASSERT_TRUE(batched.ok()) << batched.status();
    for (int64_t b = 0; b < rows; ++b) {
      auto row = (*batched)[b].narrow(0, 0, lengths[b]);
      EXPECT_LE(MaxAbsDiff(row, all_ref[b]), 1e-4f) << "batch row " << b;
    }
  }
}

class DefaultModelParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = LoadOrDie(t2::testing::DefaultModelPath()).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static LlamaModel* model_;
};
LlamaModel* DefaultModelParity::model_ = nullptr;

TEST_F(DefaultModelParity, LogitsMatchTransformersWithin1e3) {
  ASSERT_NE(model_, nullptr);
  auto dir = FixturesDir("model/gguf");
  auto manifest = ReadJson(dir / "manifest.json");
  ASSERT_GE(manifest["logits"].size(), 8u);
  for (const auto& c : manifest["logits"]) {
    auto ids = c["ids"].get<std::vector<int64_t>>();
    auto cache = model_->NewCache(1, static_cast<int64_t>(ids.size())).value();
    auto logits = model_->Forward(Tokens(ids), std::vector<int64_t>{(int64_t)ids.size()}, cache, true);
    ASSERT_TRUE(logits.ok()) << logits.status();
    EXPECT_LE(MaxAbsDiff(*logits, ReadFloats(dir / c["file"].get<std::string>())), 1e-3f)
        << "prompt of " << ids.size() << " tokens";
  }
}

TEST_F(DefaultModelParity, GreedyContinuationsMatchTransformers) {
  ASSERT_NE(model_, nullptr);
  auto manifest = ReadJson(FixturesDir("model/gguf") / "manifest.json");
  ASSERT_GE(manifest["greedy"].size(), 8u);
  const int64_t eos = manifest["eos_token_id"].get<int64_t>();
  for (const auto& c : manifest["greedy"]) {
    auto prompt = c["prompt_ids"].get<std::vector<int64_t>>();
    auto expected = c["output_ids"].get<std::vector<int64_t>>();
    auto cache = model_->NewCache(1, static_cast<int64_t>(prompt.size()) + 64).value();
    auto logits = model_->Forward(Tokens(prompt), std::vector<int64_t>{(int64_t)prompt.size()}, cache, false);
    std::vector<int64_t> out;
    while (out.size() < expected.size()) {
      ASSERT_TRUE(logits.ok()) << logits.status();
      int64_t next = logits->argmax(-1).item<int64_t>();
      out.push_back(next);
      if (next == eos) break;
      logits = model_->Forward(Tokens({next}), std::vector<int64_t>{1}, cache, false);
    }
    EXPECT_EQ(out, expected) << "for: " << c["text"].get<std::string>();
  }
}

}  // namespace
}  // namespace t2::model
