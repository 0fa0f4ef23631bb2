// Dequantisation and FP16/BF16 conversion against the Python `gguf` package (make_fixtures.py),
// compared bit for bit.
#include "t2/formats/dequantize.h"

#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "gguf_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace t2::formats {
namespace {

using ::testing::HasSubstr;
using testing_util::BitEqual;
using testing_util::FixturesDir;

class DequantizeFixtureTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(DequantizeFixtureTest, MatchesGgufPackageBitExactly) {
  const GgmlType type = GetParam();
  const auto traits = GetGgmlTypeTraits(static_cast<uint32_t>(type));
  ASSERT_TRUE(traits.has_value());
  const std::string name(traits->name);
  const std::vector<uint8_t> raw =
      testing_util::ReadBytes(FixturesDir() / "dequant" / (name + ".raw"));
  const std::vector<float> want =
      testing_util::ReadFloats(FixturesDir() / "dequant" / (name + ".ref"));
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(raw.size() / traits->block_bytes * traits->block_elements, want.size());
  ASSERT_GE(want.size() / traits->block_elements, 256u) << "fixture should hold hundreds of blocks";

  std::vector<float> got(want.size());
  ASSERT_TRUE(Dequantize(type, raw, got).ok());
  EXPECT_TRUE(BitEqual(got, want)) << name;

  // Dequantising a sub-range of blocks gives the same values (no state across blocks).
  const size_t block_bytes = traits->block_bytes, block_elems = traits->block_elements;
  std::vector<float> part(3 * block_elems);
  ASSERT_TRUE(
      Dequantize(type, std::span(raw).subspan(5 * block_bytes, 3 * block_bytes), part).ok());
  EXPECT_TRUE(BitEqual(part, std::span(want).subspan(5 * block_elems, 3 * block_elems)));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantizeFixtureTest,
                         ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16,
                                           GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1,
                                           GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ4_K,
                                           GgmlType::kQ5_K, GgmlType::kQ6_K),
                         [](const auto& info) {
                           return std::string(
                               GetGgmlTypeTraits(static_cast<uint32_t>(info.param))->name);
                         });

TEST(DequantizeTest, RejectsSizeMismatches) {
  std::vector<uint8_t> src(20);  // one Q4_1 block
  std::vector<float> dst(32);
  EXPECT_TRUE(Dequantize(GgmlType::kQ4_1, src, dst).ok());

  std::vector<float> partial(31);
  absl::Status s = Dequantize(GgmlType::kQ4_1, src, partial);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a multiple of the block size 32"));

  std::vector<float> two_blocks(64);
  s = Dequantize(GgmlType::kQ4_1, src, two_blocks);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("need 40 bytes, got 20"));

  s = Dequantize(static_cast<GgmlType>(99), src, dst);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("99"));

  EXPECT_TRUE(Dequantize(GgmlType::kQ6_K, {}, {}).ok());
}

TEST(DequantizeTest, ToleratesUnalignedSource) {
  // Blocks at an odd address: the decoders must not assume any alignment.
  std::vector<uint8_t> buf(1 + 2 * 34, 0);
  buf[1] = 0x00;
  buf[2] = 0x3C;  // d = 1.0
  for (int j = 0; j < 32; ++j) buf[3 + j] = static_cast<uint8_t>(j - 16);
  std::vector<float> out(64);
  ASSERT_TRUE(Dequantize(GgmlType::kQ8_0, std::span(buf).subspan(1), out).ok());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], static_cast<float>(j - 16));
  for (int j = 32; j < 64; ++j) EXPECT_EQ(out[j], 0.0f);
}

TEST(HalfTest, HalfToFloatMatchesNumpyForAllBitPatterns) {
  const std::vector<float> want =
      testing_util::ReadFloats(FixturesDir() / "half" / "half_to_float.ref");
  ASSERT_EQ(want.size(), 65536u);
  std::vector<float> got(65536);
  for (uint32_t h = 0; h < 65536; ++h) got[h] = HalfToFloat(static_cast<uint16_t>(h));
  EXPECT_TRUE(BitEqual(got, want));
}

TEST(HalfTest, FloatToHalfRoundsToNearestEvenLikeNumpy) {
  const std::vector<float> in = testing_util::ReadFloats(FixturesDir() / "half" / "float.in");
  const std::vector<uint16_t> want =
      testing_util::ReadU16s(FixturesDir() / "half" / "float_to_half.ref");
  ASSERT_EQ(in.size(), want.size());
  ASSERT_GT(in.size(), 100000u);
  int mismatches = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t got = FloatToHalf(in[i]);
    const bool want_nan = (want[i] & 0x7C00) == 0x7C00 && (want[i] & 0x3FF) != 0;
    const bool got_nan = (got & 0x7C00) == 0x7C00 && (got & 0x3FF) != 0;
    const bool ok = want_nan ? got_nan : got == want[i];
    if (!ok && ++mismatches <= 5) {
      ADD_FAILURE() << "FloatToHalf(" << in[i] << " = 0x" << std::hex
                    << std::bit_cast<uint32_t>(in[i]) << ") = 0x" << got << ", want 0x" << want[i];
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(HalfTest, FloatToHalfRoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    if (nan) continue;
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
  const uint16_t nan = FloatToHalf(std::nanf(""));
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x3FF, 0);
}

TEST(HalfTest, FloatToBFloat16MatchesGgml) {
  const std::vector<float> in = testing_util::ReadFloats(FixturesDir() / "half" / "float.in");
  const std::vector<uint16_t> want =
      testing_util::ReadU16s(FixturesDir() / "half" / "float_to_bf16.ref");
  ASSERT_EQ(in.size(), want.size());
  int mismatches = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t got = FloatToBFloat16(in[i]);
    if (got != want[i] && ++mismatches <= 5) {
      ADD_FAILURE() << "FloatToBFloat16(0x" << std::hex << std::bit_cast<uint32_t>(in[i])
                    << ") = 0x" << got << ", want 0x" << want[i];
    }
    // bf16 -> float is exact, and a non-NaN bf16 round-trips.
    if (!std::isnan(in[i])) {
      const float back = BFloat16ToFloat(got);
      EXPECT_EQ(FloatToBFloat16(back), got);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace t2::formats
