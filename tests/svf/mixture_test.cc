// Mixtures in z space against make_golden.py (global and per-layer α, normalised by the
// mixer), the identities a mixture must keep, and the errors that name the α entry or the
// expert that does not fit.
#include "t2/svf/mixture.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "testing/reference_data.h"

namespace t2::svf {
namespace {

namespace fs = std::filesystem;
using t2::testing::FixturesDir;
using t2::testing::ReadFloats;
using t2::testing::ReadJson;
using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

at::Tensor Vector(const std::vector<float>& values) { return at::tensor(values, at::kFloat); }

// Three layers of gate/up/down vectors of lengths 4, 4, 3, all equal to `value`.
Expert Constant(float value, TargetSet targets = TargetSet::kMlp) {
  Expert expert;
  expert.metadata.targets = targets;
  expert.metadata.task = "constant";
  expert.metadata.base_model = "m";
  for (int layer = 0; layer < 3; ++layer) {
    for (auto [kind, r] : std::vector<std::pair<std::string, int64_t>>{{"gate_proj", 4}, {"up_proj", 4}, {"down_proj", 3}}) {
      expert.z["model.layers." + std::to_string(layer) + ".mlp." + kind + ".weight"] = at::full({r}, value);
    }
  }
  return expert;
}

absl::StatusOr<Expert> Mix(const std::vector<const Expert*>& experts, std::vector<double> alpha,
                           bool per_layer = false, int num_layers = 3) {
  return MixExperts(experts, {.alpha = std::move(alpha), .per_layer = per_layer}, num_layers);
}

float MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<float>(); }

TEST(MixExperts, OneExpertIsItself) {
  at::manual_seed(21);
  Expert expert = Constant(0);
  for (auto& [name, z] : expert.z) z = at::rand(z.sizes());
  for (double alpha : {1.0, 2.5}) {
    auto mixed = Mix({&expert}, {alpha});
    ASSERT_TRUE(mixed.ok()) << mixed.status();
    ASSERT_EQ(mixed->z.size(), expert.z.size());
    for (const auto& [name, z] : expert.z) EXPECT_TRUE(at::equal(mixed->z.at(name), z)) << name;
  }
  auto per_layer = Mix({&expert}, {1, 3, 0.5}, /*per_layer=*/true);
  ASSERT_TRUE(per_layer.ok()) << per_layer.status();
  for (const auto& [name, z] : expert.z) EXPECT_TRUE(at::equal(per_layer->z.at(name), z)) << name;
}

TEST(MixExperts, KeepsTheFirstExpertsMetadataWithTaskMixture) {
  Expert a = Constant(1), b = Constant(2);
  a.metadata.base_fingerprint = "abc";
  a.metadata.normalization = b.metadata.normalization = Normalization::kNone;
  auto mixed = Mix({&a, &b}, {1, 1});
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->metadata.task, "mixture");
  EXPECT_EQ(mixed->metadata.base_fingerprint, "abc");
  EXPECT_EQ(mixed->metadata.normalization, Normalization::kNone);
  EXPECT_EQ(mixed->metadata.targets, TargetSet::kMlp);
  for (const auto& [name, z] : mixed->z) {
    EXPECT_EQ(z.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::allclose(z, at::full(z.sizes(), 1.5f))) << name;
  }
}

TEST(MixExperts, PerLayerWeightsApplyToTheirLayerOnly) {
  const Expert one = Constant(1), three = Constant(3);
  // Layer 0: only the first; layer 1: only the second; layer 2: the mean.
  auto mixed = Mix({&one, &three}, {1, 0, 0, 7, 2, 2}, /*per_layer=*/true);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  for (const auto& [name, z] : mixed->z) {
    const float expected = name.starts_with("model.layers.0.") ? 1.f : name.starts_with("model.layers.1.") ? 3.f : 2.f;
    EXPECT_TRUE(at::allclose(z, at::full(z.sizes(), expected))) << name;
  }
}

// The golden experts: names and lengths from the manifest, values from make_golden.py.
class MixtureGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FixturesDir("svf/golden");
    manifest_ = ReadJson(dir_ / "manifest.json")["mixture"];
    names_ = manifest_["names"].get<std::vector<std::string>>();
    for (const auto& files : manifest_["experts"]) {
      Expert expert;
      for (size_t j = 0; j < names_.size(); ++j) expert.z[names_[j]] = Load(files[j]);
      experts_.push_back(std::move(expert));
    }
    ASSERT_GE(experts_.size(), 2u);
  }
  at::Tensor Load(const nlohmann::json& file) const { return Vector(ReadFloats(dir_ / file.get<std::string>())); }

  void ExpectMatches(const char* which, bool per_layer) {
    const auto& golden = manifest_[which];
    std::vector<const Expert*> parts;
    for (const Expert& e : experts_) parts.push_back(&e);
    const int layers = per_layer ? golden["num_layers"].get<int>() : 0;
    auto mixed = Mix(parts, golden["alpha"].get<std::vector<double>>(), per_layer, layers);
    ASSERT_TRUE(mixed.ok()) << mixed.status();
    ASSERT_EQ(mixed->z.size(), names_.size());
    for (size_t j = 0; j < names_.size(); ++j) {
      EXPECT_LE(MaxAbsDiff(mixed->z.at(names_[j]), Load(golden["z"][j])), 1e-6f) << names_[j];
    }
  }

  fs::path dir_;
  nlohmann::json manifest_;
  std::vector<std::string> names_;
  std::vector<Expert> experts_;
};

TEST_F(MixtureGoldenTest, GlobalMatchesTheReference) { ExpectMatches("global", false); }
TEST_F(MixtureGoldenTest, PerLayerMatchesTheReference) { ExpectMatches("per_layer", true); }

TEST(MixExperts, AlphaErrorsNameTheEntry) {
  const Expert a = Constant(1), b = Constant(2);
  struct Case {
    std::vector<double> alpha;
    bool per_layer;
    const char* message;
  };
  const Case cases[] = {
      {{0.5, -0.1}, false, "alpha[1] is -0.1"},
      {{kNaN, 1}, false, "alpha[0] is nan"},
      {{1, std::numeric_limits<double>::infinity()}, false, "alpha[1] is inf"},
      {{0, 0}, false, "alpha sums to 0"},
      {{1}, false, "alpha: 1 values, expected one per expert (2)"},
      {{1, 1, 1}, false, "alpha: 3 values"},
      {{1, 1}, true, "expected 3 layers × 2 experts = 6"},
      {{1, 1, 0, 0, 1, 1}, true, "alpha of layer 1 sums to 0"},
      {{1, 1, 1, -2, 1, 1}, true, "alpha[3] (layer 1, expert 1) is -2"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    auto mixed = Mix({&a, &b}, c.alpha, c.per_layer);
    EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(mixed.status().message(), HasSubstr(c.message));
  }
  EXPECT_THAT(Mix({&a, &b}, {1, 1, 1, 1, 1, 1}, true, 0).status().message(), HasSubstr("num_layers"));
  // A layer the expert has but num_layers does not cover.
  EXPECT_THAT(Mix({&a, &b}, {1, 1, 1, 1}, true, 2).status().message(), HasSubstr("model.layers.2."));
}

TEST(MixExperts, ExpertsThatDoNotFitAreNamed) {
  const Expert a = Constant(1);
  EXPECT_THAT(Mix({}, {}).status().message(), HasSubstr("at least one"));
  EXPECT_THAT(Mix({&a, nullptr}, {1, 1}).status().message(), HasSubstr("experts[1] is null"));

  const Expert attn = Constant(1, TargetSet::kAttn);
  EXPECT_THAT(Mix({&a, &attn}, {1, 1}).status().message(), HasSubstr("experts[1]: targets 'attn'"));

  Expert fewer = Constant(2);
  fewer.z.erase("model.layers.2.mlp.up_proj.weight");
  EXPECT_THAT(Mix({&a, &a, &fewer}, {1, 1, 1}).status().message(),
              HasSubstr("experts[2]: has no vector for 'model.layers.2.mlp.up_proj.weight'"));
  EXPECT_THAT(Mix({&fewer, &a}, {1, 1}).status().message(),
              HasSubstr("experts[1]: has a vector for 'model.layers.2.mlp.up_proj.weight'"));

  Expert shorter = Constant(2);
  shorter.z["model.layers.1.mlp.gate_proj.weight"] = at::ones({3});
  EXPECT_THAT(Mix({&a, &shorter}, {1, 1}).status().message(),
              HasSubstr("experts[1]: vector 'model.layers.1.mlp.gate_proj.weight' has 3 values, experts[0]'s has 4"));

  Expert unnormalised = Constant(2);
  unnormalised.metadata.normalization = Normalization::kNone;
  EXPECT_THAT(Mix({&a, &unnormalised}, {1, 1}).status().message(), HasSubstr("experts[1]: normalization 'none'"));
}

}  // namespace
}  // namespace t2::svf
