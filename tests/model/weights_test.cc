// Weight validation and model construction from in-memory weights (no files involved).
#include "t2/model/weights.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "t2/model/llama.h"

namespace t2::model {
namespace {

using ::testing::HasSubstr;

ModelConfig TinyConfig() {
  ModelConfig c;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.max_position_embeddings = 32;
  c.tie_word_embeddings = true;
  return c;
}

WeightMap RandomWeights(const ModelConfig& c) {
  WeightMap w;
  auto r = [](std::vector<int64_t> shape) { return at::randn(shape, at::kFloat) * 0.3; };
  w["model.embed_tokens.weight"] = r({c.vocab_size, c.hidden_size});
  w["model.norm.weight"] = r({c.hidden_size});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    w[p + "input_layernorm.weight"] = r({c.hidden_size});
    w[p + "post_attention_layernorm.weight"] = r({c.hidden_size});
    w[p + "self_attn.q_proj.weight"] = r({16, 16});
    w[p + "self_attn.k_proj.weight"] = r({8, 16});
    w[p + "self_attn.v_proj.weight"] = r({8, 16});
    w[p + "self_attn.o_proj.weight"] = r({16, 16});
    w[p + "mlp.gate_proj.weight"] = r({24, 16});
    w[p + "mlp.up_proj.weight"] = r({24, 16});
    w[p + "mlp.down_proj.weight"] = r({16, 24});
  }
  return w;
}

TEST(WeightsTest, ValidateNamesTheTensorAtFault) {
  auto c = TinyConfig();
  auto w = RandomWeights(c);
  EXPECT_TRUE(ValidateWeights(w, c).ok());
  auto missing = w;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  EXPECT_THAT(ValidateWeights(missing, c).message(), HasSubstr("missing tensor model.layers.1.mlp.up_proj.weight"));
  auto misshapen = w;
  misshapen["model.layers.0.self_attn.k_proj.weight"] = at::zeros({9, 16});
  EXPECT_THAT(ValidateWeights(misshapen, c).message(), HasSubstr("k_proj.weight has shape [9, 16]"));
  auto extra = w;
  extra["model.layers.7.mlp.up_proj.weight"] = at::zeros({1});
  EXPECT_THAT(ValidateWeights(extra, c).message(), HasSubstr("unexpected tensor model.layers.7"));
}

TEST(WeightsTest, ParametersAreLiveViewsUnderHfNames) {
  auto c = TinyConfig();
  auto model = LlamaModel::FromWeights(c, RandomWeights(c), {.device = DeviceSpec::Cpu()});
  ASSERT_TRUE(model.ok()) << model.status();
  const auto& params = (*model)->parameters();
  EXPECT_EQ(params.at("model.layers.1.self_attn.k_proj.weight").sizes(), (at::IntArrayRef{8, 16}));
  EXPECT_EQ(params.at("model.layers.0.mlp.down_proj.weight").sizes(), (at::IntArrayRef{16, 24}));

  auto tokens = at::tensor({3, 7, 11}, at::kLong).view({1, 3});
  auto cache = (*model)->NewCache(1, 8).value();
  auto before = (*model)->Forward(tokens, std::vector<int64_t>{3}, cache, false).value();
  // Zeroing the up projection through its HF-named view zeroes every MLP output.
  params.at("model.layers.0.mlp.up_proj.weight").zero_();
  params.at("model.layers.1.mlp.up_proj.weight").zero_();
  auto cache2 = (*model)->NewCache(1, 8).value();
  auto after = (*model)->Forward(tokens, std::vector<int64_t>{3}, cache2, false).value();
  EXPECT_GT((before - after).abs().max().item<float>(), 1e-4f);
}

TEST(WeightsTest, ForwardRejectsBadInput) {
  auto c = TinyConfig();
  auto model = LlamaModel::FromWeights(c, RandomWeights(c), {.device = DeviceSpec::Cpu()}).value();
  auto cache = model->NewCache(1, 4).value();
  auto out_of_vocab = at::tensor({3, 50}, at::kLong).view({1, 2});
  EXPECT_THAT(model->Forward(out_of_vocab, std::vector<int64_t>{2}, cache, false).status().message(),
              HasSubstr("token id 50 outside vocabulary"));
  auto too_long = at::zeros({1, 5}, at::kLong);
  EXPECT_EQ(model->Forward(too_long, std::vector<int64_t>{5}, cache, false).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_THAT(model->NewCache(1, 33).status().message(), HasSubstr("exceeds the model's context"));
  EXPECT_EQ(model->NewCache(0, 4).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace t2::model
