// The registry database's JSON columns read back what was written, and a damaged value is
// DataLoss, never undefined behaviour (the first bug tests/fuzz/json_columns_fuzz.cc found: a
// number beyond int64, or a float, was cast to an integer).
#include "json_columns.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace t2::store::internal {
namespace {

TEST(JsonColumnsTest, RanksAndMixtureSpecsRoundTrip) {
  const std::map<std::string, int64_t> ranks = {{"model.layers.0.mlp.up_proj", 576}, {"x", 1}};
  auto read = RanksFromJson(RanksToJson(ranks));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, ranks);
  Mixture mixture{.name = "m",
                  .experts = {{"math", 3, std::string(64, 'a')}},
                  .alpha = {0.25, 1e-7},
                  .per_layer = true};
  Mixture back;
  ASSERT_TRUE(MixtureSpecFromJson(MixtureSpecToJson(mixture), &back).ok());
  EXPECT_EQ(back.experts, mixture.experts);
  EXPECT_EQ(back.alpha, mixture.alpha);
  EXPECT_TRUE(back.per_layer);
}

TEST(JsonColumnsTest, NonIntegersAndOutOfRangeNumbersAreDataLoss) {
  for (const char* text : {R"({"a": -92233720368547758093})", R"({"a": 1e300})", R"({"a": 1.5})",
                           R"({"a": 18446744073709551615})", R"({"a": "7"})"}) {
    EXPECT_EQ(RanksFromJson(text).status().code(), absl::StatusCode::kDataLoss) << text;
  }
  Mixture out;
  const absl::Status bad_version = MixtureSpecFromJson(
      R"({"experts": [{"name": "math", "version": 1e300, "sha256": "x"}], "alpha": [1], "per_layer": false})",
      &out);
  EXPECT_EQ(bad_version.code(), absl::StatusCode::kDataLoss) << bad_version;
}

}  // namespace
}  // namespace t2::store::internal
