// The target-matrix name rules (t2::svf_targets, no LibTorch): which HF weight names SVF
// adapts for each target set, in which order, and the names that are refused. The registry
// checks expert files with the same functions.
#include "t2/svf/targets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace t2::svf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(Targets, MlpNamesLayerByLayer) {
  EXPECT_THAT(
      TargetMatrixNames(/*num_layers=*/2, TargetSet::kMlp),
      ElementsAre("model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                  "model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.gate_proj.weight",
                  "model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight"));
}

TEST(Targets, AttnNamesLayerByLayer) {
  EXPECT_THAT(
      TargetMatrixNames(/*num_layers=*/2, TargetSet::kAttn),
      ElementsAre(
          "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
          "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
          "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
          "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight"));
}

TEST(Targets, AllIsAttentionThenMlpWithinEachLayer) {
  auto names = TargetMatrixNames(/*num_layers=*/2, TargetSet::kAll);
  ASSERT_EQ(names.size(), 14u);
  EXPECT_EQ(names[0], "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(names[3], "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(names[4], "model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(names[6], "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(names[7], "model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(names[13], "model.layers.1.mlp.down_proj.weight");
  for (const auto& name : names) {
    EXPECT_TRUE(IsTarget(TargetSet::kAll, name)) << name;
    EXPECT_EQ(IsTarget(TargetSet::kMlp, name), name.find(".mlp.") != std::string::npos) << name;
    EXPECT_EQ(IsTarget(TargetSet::kAttn, name), name.find(".self_attn.") != std::string::npos)
        << name;
  }
}

TEST(Targets, NamesRoundTripAndBadNamesAreRefusedNamingTheValue) {
  for (TargetSet t : {TargetSet::kMlp, TargetSet::kAttn, TargetSet::kAll}) {
    auto parsed = ParseTargetSet(TargetSetName(t));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(TargetSetName(TargetSet::kAttn), "attn");
  for (const char* bad : {"", "MLP", "mlp+attn", "attention", "all "}) {
    auto parsed = ParseTargetSet(bad);
    ASSERT_FALSE(parsed.ok()) << "'" << bad << "'";
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(std::string("'") + bad + "'"));
  }
}

TEST(Targets, IsTargetRejectsNonMatrices) {
  EXPECT_TRUE(IsTarget(TargetSet::kMlp, "model.layers.31.mlp.down_proj.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kMlp, "model.layers.3.self_attn.q_proj.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.layers.3.self_attn.q_proj.bias"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.layers.3.input_layernorm.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.embed_tokens.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "lm_head.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.layers.x.mlp.up_proj.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.layers.01.mlp.up_proj.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.layers.1.mlp.up_proj.weight.extra"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "xmodel.layers.1.mlp.up_proj.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.layers.-1.mlp.up_proj.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.layers..mlp.up_proj.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAll, "model.layers.99999999999.mlp.up_proj.weight"));
  EXPECT_TRUE(IsTarget(TargetSet::kAttn, "model.layers.2.self_attn.o_proj.weight"));
  EXPECT_FALSE(IsTarget(TargetSet::kAttn, "model.layers.0.mlp.gate_proj.weight"));
}

TEST(Targets, LayerOf) {
  EXPECT_EQ(LayerOf("model.layers.7.mlp.up_proj.weight"), 7);
  EXPECT_EQ(LayerOf("model.layers.0.self_attn.q_proj.weight"), 0);
  EXPECT_EQ(LayerOf("model.embed_tokens.weight"), std::nullopt);
  EXPECT_EQ(LayerOf("model.layers.3."), std::nullopt);
}

}  // namespace
}  // namespace t2::svf
