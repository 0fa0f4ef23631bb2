#include "t2/common/flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace t2 {
namespace {

using ::testing::HasSubstr;

Flags Parse(const std::vector<std::string>& args) {
  auto flags = Flags::Parse(args, {.value_flags = {"n", "x"}});
  EXPECT_TRUE(flags.ok()) << flags.status();
  return flags.ok() ? *flags : Flags();
}

TEST(FlagsTest, NumbersMustBeFinite) {
  for (const char* text : {"nan", "NaN", "inf", "-inf", "1e999"}) {
    auto v = Parse({"--x", text}).GetDouble("x", 1.0);
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(v.status().message(), HasSubstr("--x must be a number")) << text;
  }
  EXPECT_EQ(*Parse({"--x", "2.5"}).GetDouble("x", 1.0), 2.5);
}

TEST(FlagsTest, RangesNameTheFlagAndTheRange) {
  auto low = Parse({"--n", "-1"}).GetInt("n", 5, 0, 10);
  EXPECT_EQ(low.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(low.status().message(), "--n must be in [0, 10], got -1");
  // Past int32: refused rather than narrowed by the caller.
  EXPECT_FALSE(Parse({"--n", "4294967297"}).GetInt("n", 5, 0, INT32_MAX).ok());
  EXPECT_EQ(*Parse({"--n", "10"}).GetInt("n", 5, 0, 10), 10);
  EXPECT_EQ(*Parse({"--n", "0"}).GetInt("n", 5, 0, 10), 0);
  // Absent: the program's own fallback, unchecked.
  EXPECT_EQ(*Parse({}).GetInt("n", 50, 0, 10), 50);
  EXPECT_THAT(Parse({"--x", "-0.5"}).GetDouble("x", 1.0, 0, 1).status().message(),
              HasSubstr("--x must be in [0, 1], got -0.5"));
  EXPECT_EQ(*Parse({"--x", "1"}).GetDouble("x", 0.5, 0, 1), 1.0);
}

}  // namespace
}  // namespace t2
