// Σ′ rebuild: ComposeWeight against make_golden.py's float64 reference of the paper's
// formula, the normalisation's invariants, and MergedWeights on a tiny model: experts change
// the logits, switching does not accumulate, RestoreBase is bit-exact, matrices an expert
// does not cover keep the base, and the merged form agrees with the model's factored form.
#include "t2/svf/compose.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"
#include "testing/reference_data.h"

namespace t2::svf {
namespace {

namespace fs = std::filesystem;
using t2::testing::FixturesDir;
using t2::testing::ReadFloats;
using t2::testing::ReadJson;
using ::testing::HasSubstr;

at::Tensor LoadF32(const fs::path& file, std::vector<int64_t> shape) {
  std::vector<float> values = ReadFloats(file);
  return at::tensor(values, at::kFloat).view(shape).clone();
}

// ‖actual − expected‖_F / ‖expected‖_F, in float64.
double RelativeError(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor e = expected.to(at::kDouble);
  return (actual.to(at::kDouble) - e).norm().item<double>() / e.norm().item<double>();
}

// Thin SVD computed in `dtype`, returned as float32 factors.
SvdFactors FactorsOf(const at::Tensor& w, at::ScalarType dtype = at::kFloat) {
  auto [u, s, vh] = at::linalg_svd(w.to(dtype), /*full_matrices=*/false);
  return {.u = u.to(at::kFloat).contiguous(),
          .s = s.to(at::kFloat).contiguous(),
          .v = vh.t().to(at::kFloat).contiguous()};
}

// ---------------------------------------------------------------------------------------
// ComposeWeight and NormalizationScale

// Two factorisations of each golden W: a float64 SVD rounded to float32 isolates
// ComposeWeight's own arithmetic (1e-5); a float32 SVD, what Decomposition computes, adds the
// SVD's error. A non-constant z weighs singular vectors one by one, and those of a random
// Gaussian matrix (close singular values) are only determined to ~1e-5 in float32: torch's
// own float32 SVD lands at 1.2e-5 from the float64 W' on w0, so that bound is looser.
TEST(ComposeWeight, MatchesTheReferenceFormula) {
  const fs::path dir = FixturesDir("svf/golden");
  const auto manifest = ReadJson(dir / "manifest.json");
  int checked = 0;
  for (const auto& entry : manifest["compose"]) {
    const auto shape = entry["shape"].get<std::vector<int64_t>>();
    const at::Tensor w = LoadF32(dir / entry["w"].get<std::string>(), shape);
    const SvdFactors precise = FactorsOf(w, at::kDouble);
    const SvdFactors single = FactorsOf(w, at::kFloat);
    for (const auto& c : entry["cases"]) {
      SCOPED_TRACE(c["w_prime"].get<std::string>());
      const at::Tensor z = LoadF32(dir / c["z"].get<std::string>(), {precise.rank()});
      const at::Tensor expected = LoadF32(dir / c["w_prime"].get<std::string>(), shape);
      auto normalization = ParseNormalization(c["normalization"].get<std::string>());
      ASSERT_TRUE(normalization.ok()) << normalization.status();
      const at::Tensor actual = ComposeWeight(precise, z, *normalization);
      EXPECT_EQ(actual.scalar_type(), at::kFloat);
      ASSERT_EQ(actual.sizes(), expected.sizes());
      EXPECT_LE(RelativeError(actual, expected), 1e-5);
      EXPECT_LE(RelativeError(ComposeWeight(single, z, *normalization), expected), 5e-5);
      ++checked;
    }
  }
  EXPECT_GE(checked, 18);  // 3 matrices × 3 z × 2 normalisations
}

TEST(ComposeWeight, ConstantZWithNuclearNormalisationGivesBackW) {
  at::manual_seed(1);
  for (auto [n, m] : std::vector<std::pair<int64_t, int64_t>>{{64, 96}, {96, 64}, {33, 17}}) {
    const at::Tensor w = at::randn({n, m});
    const SvdFactors factors = FactorsOf(w);
    for (float value : {0.05f, 0.525f, 1.0f, 3.7f}) {
      SCOPED_TRACE(value);
      const at::Tensor z = at::full({factors.rank()}, value);
      EXPECT_LE(RelativeError(ComposeWeight(factors, z, Normalization::kNuclearNorm), w), 1e-5);
    }
  }
}

TEST(ComposeWeight, WithoutNormalisationZScalesW) {
  at::manual_seed(2);
  const at::Tensor w = at::randn({48, 80});
  const SvdFactors factors = FactorsOf(w);
  const at::Tensor ones = at::ones({factors.rank()});
  EXPECT_LE(RelativeError(ComposeWeight(factors, ones, Normalization::kNone), w), 1e-5);
  EXPECT_LE(RelativeError(ComposeWeight(factors, 2 * ones, Normalization::kNone), 2 * w), 1e-5);
  // And with it, the same z = 2 is undone by c = 1/2.
  EXPECT_LE(RelativeError(ComposeWeight(factors, 2 * ones, Normalization::kNuclearNorm), w), 1e-5);
}

TEST(NormalizationScale, KeepsTheSumOfSingularValues) {
  const at::Tensor s = at::tensor({4.0f, 2.0f, 1.0f});
  const at::Tensor z = at::tensor({0.5f, 1.0f, 0.0f});
  // Σσ = 7, Σσz = 2 + 2 + 0 = 4.
  EXPECT_FLOAT_EQ(NormalizationScale(s, z, Normalization::kNuclearNorm).item<float>(), 7.0f / 4.0f);
  EXPECT_FLOAT_EQ(NormalizationScale(s, z, Normalization::kNone).item<float>(), 1.0f);
  EXPECT_EQ(NormalizationScale(s, z, Normalization::kNone).scalar_type(), at::kFloat);
}

// ---------------------------------------------------------------------------------------
// MergedWeights on a tiny random Llama checkpoint

class MergedWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = model::LlamaModel::Load(FixturesDir("model/tiny") / "llama",
                                         {.device = t2::model::DeviceSpec::Cpu()});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto decomposition = Decomposition::Build(*model_, {.targets = TargetSet::kAll});
    ASSERT_TRUE(decomposition.ok()) << decomposition.status();
    all_ = std::make_unique<Decomposition>(std::move(*decomposition));
    for (const auto& [name, w] : model_->parameters()) base_[name] = w.clone();
  }

  at::Tensor Logits() {
    const std::vector<int64_t> ids = {3, 141, 59, 26, 5, 35, 89, 79, 32, 38, 4, 62};
    auto cache = model_->NewCache(1, 32);
    EXPECT_TRUE(cache.ok()) << cache.status();
    const at::Tensor tokens = at::tensor(ids, at::kLong).view({1, static_cast<int64_t>(ids.size())});
    auto logits = model_->Forward(tokens, std::vector<int64_t>{static_cast<int64_t>(ids.size())}, *cache,
                                  /*all_positions=*/true);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits.ok() ? *logits : at::Tensor();
  }

  // z uniform in [lo, hi) for every target of `targets`.
  Expert RandomExpert(TargetSet targets, float lo = 0.2f, float hi = 1.5f) {
    Expert expert;
    expert.metadata.targets = targets;
    expert.metadata.base_fingerprint = all_->base_fingerprint();
    for (const std::string& name : all_->names()) {
      if (!IsTarget(targets, name)) continue;
      expert.z[name] = lo + (hi - lo) * at::rand({all_->Find(name)->rank()});
    }
    return expert;
  }

  std::map<std::string, at::Tensor> Snapshot() const {
    std::map<std::string, at::Tensor> out;
    for (const auto& [name, w] : model_->parameters()) out[name] = w.clone();
    return out;
  }

  std::unique_ptr<model::LlamaModel> model_;
  std::unique_ptr<Decomposition> all_;
  std::map<std::string, at::Tensor> base_;
};

TEST_F(MergedWeightsTest, ApplyChangesLogitsAndRestoreBaseIsBitExact) {
  at::manual_seed(3);
  const at::Tensor base_logits = Logits();
  auto merged = MergedWeights::Create(*model_, *all_);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_GT(merged->base_bytes(), 0);

  const Expert expert = RandomExpert(TargetSet::kAll);
  ASSERT_TRUE(ValidateExpert(expert, *all_).ok());
  ASSERT_TRUE(merged->Apply(expert).ok());
  EXPECT_GT((Logits() - base_logits).abs().max().item<float>(), 1e-2f);
  for (const std::string& name : all_->names()) {
    EXPECT_FALSE(at::equal(model_->parameters().at(name), base_.at(name))) << name;
  }

  merged->RestoreBase();
  for (const auto& [name, w] : model_->parameters()) {
    EXPECT_TRUE(at::equal(w, base_.at(name))) << name;
  }
  EXPECT_TRUE(at::equal(Logits(), base_logits));
}

TEST_F(MergedWeightsTest, AppliedWeightsAreTheComposedOnes) {
  at::manual_seed(4);
  auto merged = MergedWeights::Create(*model_, *all_);
  ASSERT_TRUE(merged.ok()) << merged.status();
  Expert expert = RandomExpert(TargetSet::kAll);
  for (Normalization normalization : {Normalization::kNuclearNorm, Normalization::kNone}) {
    expert.metadata.normalization = normalization;
    ASSERT_TRUE(merged->Apply(expert).ok());
    for (const auto& [name, z] : expert.z) {
      EXPECT_LE(RelativeError(model_->parameters().at(name), ComposeWeight(*all_->Find(name), z, normalization)),
                1e-6)
          << name;
    }
  }
}

TEST_F(MergedWeightsTest, ConstantExpertKeepsTheBaseLogits) {
  const at::Tensor base_logits = Logits();
  auto merged = MergedWeights::Create(*model_, *all_);
  ASSERT_TRUE(merged.ok()) << merged.status();
  for (float value : {0.3f, 0.525f, 1.0f}) {
    SCOPED_TRACE(value);
    ASSERT_TRUE(merged->Apply(ConstantExpert(*all_, value, "tiny")).ok());
    EXPECT_LE((Logits() - base_logits).abs().max().item<float>(), 1e-5f);
  }
}

TEST_F(MergedWeightsTest, SwitchingExpertsDoesNotAccumulate) {
  at::manual_seed(5);
  auto merged = MergedWeights::Create(*model_, *all_);
  ASSERT_TRUE(merged.ok()) << merged.status();
  const Expert a = RandomExpert(TargetSet::kAll);
  const Expert b = RandomExpert(TargetSet::kAll);
  ASSERT_TRUE(merged->Apply(b).ok());
  const auto b_alone = Snapshot();
  ASSERT_TRUE(merged->Apply(a).ok());
  ASSERT_TRUE(merged->Apply(b).ok());
  for (const auto& [name, w] : model_->parameters()) {
    EXPECT_TRUE(at::equal(w, b_alone.at(name))) << name;
  }
}

TEST_F(MergedWeightsTest, MatricesTheExpertDoesNotCoverGetTheBase) {
  at::manual_seed(6);
  auto merged = MergedWeights::Create(*model_, *all_);
  ASSERT_TRUE(merged.ok()) << merged.status();
  // An attention+MLP expert first, so that the attention weights must be put back.
  ASSERT_TRUE(merged->Apply(RandomExpert(TargetSet::kAll)).ok());
  const Expert mlp = RandomExpert(TargetSet::kMlp);
  ASSERT_TRUE(ValidateExpert(mlp, *all_).ok());
  ASSERT_TRUE(merged->Apply(mlp).ok());
  int attention = 0;
  for (const std::string& name : all_->names()) {
    if (IsTarget(TargetSet::kMlp, name)) {
      EXPECT_FALSE(at::equal(model_->parameters().at(name), base_.at(name))) << name;
    } else {
      EXPECT_TRUE(at::equal(model_->parameters().at(name), base_.at(name))) << name;
      ++attention;
    }
  }
  EXPECT_EQ(attention, 4 * model_->config().num_hidden_layers);
}

TEST_F(MergedWeightsTest, ComposeThenWriteEqualsApply) {
  at::manual_seed(7);
  auto merged = MergedWeights::Create(*model_, *all_);
  ASSERT_TRUE(merged.ok()) << merged.status();
  const Expert expert = RandomExpert(TargetSet::kMlp);
  auto composed = merged->Compose(expert);
  ASSERT_TRUE(composed.ok()) << composed.status();
  EXPECT_EQ(composed->size(), expert.z.size());
  // Compose must not touch the model.
  for (const auto& [name, w] : model_->parameters()) EXPECT_TRUE(at::equal(w, base_.at(name))) << name;

  ASSERT_TRUE(merged->Apply(expert).ok());
  const auto applied = Snapshot();
  merged->RestoreBase();
  ASSERT_TRUE(merged->Write(*composed).ok());
  for (const auto& [name, w] : model_->parameters()) {
    EXPECT_LE(RelativeError(w, applied.at(name)), 1e-6) << name;
  }
  ASSERT_TRUE(merged->Write({}).ok());  // nothing composed: the base everywhere
  for (const auto& [name, w] : model_->parameters()) EXPECT_TRUE(at::equal(w, base_.at(name))) << name;
}

TEST_F(MergedWeightsTest, RejectsAVectorOfTheWrongLengthWithoutTouchingTheWeights) {
  auto merged = MergedWeights::Create(*model_, *all_);
  ASSERT_TRUE(merged.ok()) << merged.status();
  Expert expert = ConstantExpert(*all_, 0.5f, "tiny");
  const std::string name = all_->names().back();
  expert.z[name] = at::ones({all_->Find(name)->rank() - 1});
  absl::Status status = merged->Apply(expert);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(name));
  EXPECT_THAT(status.message(), HasSubstr("length"));
  EXPECT_FALSE(merged->Compose(expert).ok());
  for (const auto& [n, w] : model_->parameters()) EXPECT_TRUE(at::equal(w, base_.at(n))) << n;
}

// The merged form (weights rebuilt) and the model's factored form (y = ((x V) ⊙ c·σ⊙z) Uᵀ)
// are two computations of the same W'.
TEST_F(MergedWeightsTest, MergedLogitsMatchTheFactoredForm) {
  at::manual_seed(8);
  const Expert expert = RandomExpert(TargetSet::kAll);
  model::RowAdapters adapters;
  adapters.adapted = {true};
  for (const auto& [name, z] : expert.z) {
    const SvdFactors& f = *all_->Find(name);
    const at::Tensor scale = f.s * z * NormalizationScale(f.s, z, expert.metadata.normalization);
    adapters.matrices[name] = {.u = f.u, .vt = f.v.t().contiguous(), .scale = scale.view({1, -1})};
  }
  const std::vector<int64_t> ids = {3, 141, 59, 26, 5, 35, 89, 79, 32, 38, 4, 62};
  const at::Tensor tokens = at::tensor(ids, at::kLong).view({1, static_cast<int64_t>(ids.size())});
  auto cache = model_->NewCache(1, 32);
  ASSERT_TRUE(cache.ok());
  auto factored = model_->Forward(tokens, std::vector<int64_t>{static_cast<int64_t>(ids.size())}, *cache,
                                  /*all_positions=*/true, &adapters);
  ASSERT_TRUE(factored.ok()) << factored.status();

  auto merged = MergedWeights::Create(*model_, *all_);
  ASSERT_TRUE(merged.ok()) << merged.status();
  ASSERT_TRUE(merged->Apply(expert).ok());
  const at::Tensor merged_logits = Logits();
  EXPECT_LE((merged_logits - *factored).abs().max().item<float>(),
            1e-5f * std::max(1.0f, merged_logits.abs().max().item<float>()));
}

TEST(MergedWeightsCuda, ApplyAndRestoreOnTheGpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  auto model = model::LlamaModel::Load(
      FixturesDir("model/tiny") / "llama",
      {.device = t2::model::DeviceSpec::Cuda(), .dtype = t2::model::ComputeDType::kBFloat16});
  ASSERT_TRUE(model.ok()) << model.status();
  auto decomposition = Decomposition::Build(**model, {.targets = TargetSet::kMlp});
  ASSERT_TRUE(decomposition.ok()) << decomposition.status();
  std::map<std::string, at::Tensor> base;
  for (const auto& [name, w] : (*model)->parameters()) base[name] = w.clone();
  auto merged = MergedWeights::Create(**model, *decomposition);
  ASSERT_TRUE(merged.ok()) << merged.status();
  at::manual_seed(9);
  Expert expert = ConstantExpert(*decomposition, 1.0f, "tiny");
  for (auto& [name, z] : expert.z) z = 0.2 + at::rand(z.sizes());
  ASSERT_TRUE(merged->Apply(expert).ok());
  for (const auto& [name, z] : expert.z) {
    const at::Tensor& w = (*model)->parameters().at(name);
    EXPECT_EQ(w.scalar_type(), at::kBFloat16);
    // bfloat16 keeps 8 bits of mantissa.
    EXPECT_LE(RelativeError(w.cpu(), ComposeWeight(*decomposition->Find(name), z, Normalization::kNuclearNorm).cpu()),
              1e-2)
        << name;
  }
  merged->RestoreBase();
  for (const auto& [name, w] : (*model)->parameters()) EXPECT_TRUE(at::equal(w, base.at(name))) << name;
}

}  // namespace
}  // namespace t2::svf
