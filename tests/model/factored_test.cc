// The factored form of SVF experts inside Forward (RowAdapters): a batch whose rows use
// different experts gives each row the logits it gets alone from a model whose weights hold
// that row's W' = c U diag(σ ⊙ z) Vᵀ (merged form), written here directly with torch.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "t2/model/llama.h"
#include "testing/reference_data.h"

namespace t2::model {
namespace {

using ::testing::HasSubstr;
using t2::testing::FixturesDir;

struct Svd {
  at::Tensor u, s, vt;
};

// One expert: a z per matrix, and the merged weights it stands for.
using Zs = std::map<std::string, at::Tensor>;

std::vector<std::string> MatrixNames(const ModelConfig& c, bool attention, bool mlp) {
  std::vector<std::string> names;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    if (attention) {
      for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}) {
        names.push_back(p + m + ".weight");
      }
    }
    if (mlp) {
      for (const char* m : {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) names.push_back(p + m + ".weight");
    }
  }
  return names;
}

at::Tensor Scale(const Svd& f, const at::Tensor& z) { return f.s * z * (f.s.sum() / (f.s * z).sum()); }

class FactoredTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = FixturesDir("model/tiny") / GetParam();
    auto m = LlamaModel::Load(dir_, {.device = DeviceSpec::Cpu()});
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m);
    names_ = MatrixNames(model_->config(), /*attention=*/true, /*mlp=*/true);
    for (const auto& name : names_) {
      auto [u, s, vh] = at::linalg_svd(model_->parameters().at(name), /*full_matrices=*/false);
      svd_[name] = {u.contiguous(), s.contiguous(), vh.contiguous()};
    }
  }

  Zs RandomExpert(uint64_t seed, const std::vector<std::string>& names) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    Zs zs;
    for (const auto& name : names) zs[name] = at::rand({svd_.at(name).s.size(0)}, gen) * 1.5 + 0.25;
    return zs;
  }

  // Logits of one prompt with the expert merged into a fresh copy of the weights.
  at::Tensor MergedLogits(const Zs& expert, const std::vector<int64_t>& ids) {
    auto m = LlamaModel::Load(dir_, {.device = DeviceSpec::Cpu()});
    EXPECT_TRUE(m.ok()) << m.status();
    for (const auto& [name, z] : expert) {  // parameters() are views into the model's weights
      const Svd& f = svd_.at(name);
      (*m)->parameters().at(name).copy_(at::matmul(f.u * Scale(f, z), f.vt));
    }
    auto cache = (*m)->NewCache(1, 32).value();
    auto tokens = at::tensor(ids, at::kLong).view({1, -1});
    auto logits = (*m)->Forward(tokens, std::vector<int64_t>{(int64_t)ids.size()}, cache, true);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits->squeeze(0);
  }

  // Adapters for a batch where row b uses experts[b] (empty map: base model).
  RowAdapters Adapters(const std::vector<const Zs*>& experts) {
    RowAdapters a;
    const int64_t batch = static_cast<int64_t>(experts.size());
    for (const Zs* e : experts) a.adapted.push_back(e != nullptr && !e->empty());
    for (int64_t b = 0; b < batch; ++b) {
      if (!a.adapted[b]) continue;
      for (const auto& [name, z] : *experts[b]) {
        const Svd& f = svd_.at(name);
        auto [it, inserted] = a.matrices.try_emplace(name);
        // An adapted row whose expert leaves this matrix alone takes z = 1 (scale σ).
        if (inserted) it->second = {f.u, f.vt, f.s.unsqueeze(0).repeat({batch, 1})};
        it->second.scale[b].copy_(Scale(f, z));
      }
    }
    return a;
  }

  std::filesystem::path dir_;
  std::unique_ptr<LlamaModel> model_;
  std::vector<std::string> names_;
  std::map<std::string, Svd> svd_;
};

TEST_P(FactoredTest, MixedBatchEqualsEachExpertMerged) {
  const Zs none;
  const Zs mlp = RandomExpert(1, MatrixNames(model_->config(), false, true));
  const Zs attn = RandomExpert(2, MatrixNames(model_->config(), true, false));
  const Zs all = RandomExpert(3, names_);
  const std::vector<const Zs*> experts = {&mlp, &none, &attn, &all};
  const std::vector<std::vector<int64_t>> prompts = {{1, 5, 9, 200, 17}, {3, 4}, {250, 8, 8, 8, 91, 2, 7}, {11, 12, 13}};

  // Prefill of the whole right-padded batch, then three decode steps with incremental KV.
  const int64_t batch = 4, widest = 7;
  auto tokens = at::zeros({batch, widest}, at::kLong);
  std::vector<int64_t> lengths;
  for (int64_t b = 0; b < batch; ++b) {
    for (size_t t = 0; t < prompts[b].size(); ++t) tokens[b][t] = prompts[b][t];
    lengths.push_back(static_cast<int64_t>(prompts[b].size()));
  }
  RowAdapters adapters = Adapters(experts);
  auto cache = model_->NewCache(batch, 32).value();
  auto prefill = model_->Forward(tokens, lengths, cache, true, &adapters);
  ASSERT_TRUE(prefill.ok()) << prefill.status();
  std::vector<std::vector<int64_t>> full = prompts;
  std::vector<at::Tensor> last(batch);
  for (int64_t b = 0; b < batch; ++b) last[b] = (*prefill)[b].narrow(0, 0, lengths[b]);
  for (int step = 0; step < 3; ++step) {
    auto next = at::zeros({batch, 1}, at::kLong);
    for (int64_t b = 0; b < batch; ++b) {
      full[b].push_back(20 + 7 * step + b);
      next[b][0] = full[b].back();
    }
    auto logits = model_->Forward(next, std::vector<int64_t>(batch, 1), cache, true, &adapters);
    ASSERT_TRUE(logits.ok()) << logits.status();
    for (int64_t b = 0; b < batch; ++b) last[b] = at::cat({last[b], (*logits)[b]}, 0);
  }
  for (int64_t b = 0; b < batch; ++b) {
    auto expected = MergedLogits(*experts[b], full[b]);
    ASSERT_EQ(expected.sizes(), last[b].sizes());
    const float diff = (expected - last[b]).abs().max().item<float>();
    EXPECT_LE(diff, 1e-4f) << "row " << b;
  }
  // The experts must matter, or the comparison above proves nothing.
  auto base = MergedLogits(none, full[0]);
  EXPECT_GT((base - last[0]).abs().max().item<float>(), 1e-2f);
}

TEST_P(FactoredTest, BadAdaptersAreRefusedNamingTheMatrix) {
  auto cache = model_->NewCache(2, 8).value();
  auto tokens = at::ones({2, 1}, at::kLong);
  const std::vector<int64_t> lengths = {1, 1};
  const Zs mlp = RandomExpert(4, {names_[4]});
  RowAdapters ok = Adapters({&mlp, &mlp});

  RowAdapters wrong_rows = ok;
  wrong_rows.adapted.pop_back();
  auto r = model_->Forward(tokens, lengths, cache, false, &wrong_rows);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("adapters.adapted"));

  RowAdapters unknown = ok;
  unknown.matrices["model.embed_tokens.weight"] = ok.matrices.begin()->second;
  r = model_->Forward(tokens, lengths, cache, false, &unknown);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("'model.embed_tokens.weight' is not a projection matrix"));

  RowAdapters misshapen = ok;
  misshapen.matrices.begin()->second.scale = at::zeros({3, ok.matrices.begin()->second.scale.size(1)});
  r = model_->Forward(tokens, lengths, cache, false, &misshapen);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr(names_[4]));

  RowAdapters wrong_dtype = ok;
  wrong_dtype.matrices.begin()->second.u = ok.matrices.begin()->second.u.to(at::kDouble);
  r = model_->Forward(tokens, lengths, cache, false, &wrong_dtype);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("float32"));
  // None of the refusals touched the cache.
  EXPECT_EQ(cache.length(0), 0);
  EXPECT_TRUE(model_->Forward(tokens, lengths, cache, false, &ok).ok());
}

// Llama (untied), Qwen2 (q/k/v biases stay outside the factored product), Mistral.
INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, FactoredTest, ::testing::Values("llama", "qwen2", "mistral"));

}  // namespace
}  // namespace t2::model
