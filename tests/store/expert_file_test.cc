// The torch-free expert file checks: a parsed file on its own and against a base model (the
// target-name rules themselves are svf's, tested in tests/svf/targets_test.cc).
#include "t2/store/expert_file.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/expert_fixture.h"
#include "store/store_test_util.h"

namespace t2::store::testing {
namespace {

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
