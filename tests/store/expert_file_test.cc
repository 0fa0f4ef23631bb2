// The torch-free expert file checks: target names (kept in step with svf/targets.cc by hand,
// so pinned here), and a parsed file against a base model.
#include "t2/store/expert_file.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/expert_fixture.h"
#include "store/store_test_util.h"

namespace t2::store::testing {
namespace {

TEST(ExpertFileTest, TargetMatrixNames) {
  EXPECT_TRUE(IsTargetMatrix("mlp", "model.layers.0.mlp.gate_proj.weight"));
  EXPECT_TRUE(IsTargetMatrix("mlp", "model.layers.31.mlp.up_proj.weight"));
  EXPECT_TRUE(IsTargetMatrix("mlp", "model.layers.10.mlp.down_proj.weight"));
  EXPECT_TRUE(IsTargetMatrix("attn", "model.layers.2.self_attn.q_proj.weight"));
  EXPECT_TRUE(IsTargetMatrix("attn", "model.layers.2.self_attn.o_proj.weight"));
  EXPECT_TRUE(IsTargetMatrix("all", "model.layers.2.self_attn.k_proj.weight"));
  EXPECT_TRUE(IsTargetMatrix("all", "model.layers.2.mlp.up_proj.weight"));

  EXPECT_FALSE(IsTargetMatrix("attn", "model.layers.0.mlp.gate_proj.weight"));
  EXPECT_FALSE(IsTargetMatrix("mlp", "model.layers.0.self_attn.v_proj.weight"));
  EXPECT_FALSE(IsTargetMatrix("mlp", "model.layers.01.mlp.up_proj.weight"));
  EXPECT_FALSE(IsTargetMatrix("mlp", "model.layers.-1.mlp.up_proj.weight"));
  EXPECT_FALSE(IsTargetMatrix("mlp", "model.layers..mlp.up_proj.weight"));
  EXPECT_FALSE(IsTargetMatrix("mlp", "model.layers.0.mlp.up_proj.bias"));
  EXPECT_FALSE(IsTargetMatrix("mlp", "model.embed_tokens.weight"));
  EXPECT_FALSE(IsTargetMatrix("mlp", "lm_head.weight"));
  EXPECT_FALSE(IsTargetMatrix("everything", "model.layers.0.mlp.up_proj.weight"));
}

TEST(ExpertFileTest, ReadsTheMetadataAndLengths) {
  ScratchDir scratch;
  const BaseModel base = TinyBase();
  const std::string bytes = ExpertBytes(TinyExpert(base, 1.0f, "code"), scratch);
  WriteFileBytes(scratch / "e.safetensors", bytes);
  auto summary = ReadExpertFile(scratch / "e.safetensors");
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->task, "code");
  EXPECT_EQ(summary->base_fingerprint, kFingerprint);
  EXPECT_EQ(summary->vector_lengths, base.target_ranks);
  EXPECT_THAT(CheckAgainstBase(*summary, base), IsOk());
  EXPECT_THAT(CheckAgainstBase(*summary, TinyBase(kOtherFingerprint)),
              StatusIs(absl::StatusCode::kFailedPrecondition, "base_fingerprint"));
}

}  // namespace
}  // namespace t2::store::testing
