// Malformed safetensors files and checkpoints: each must give the documented error code and a
// message naming the problem, never a crash (this suite also runs under ASan+UBSan).

#include <cctype>
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "t2/formats/safetensors.h"
#include "test_util.h"

namespace t2::formats {
namespace {

using ::testing::HasSubstr;
using testing_util::SafetensorsBytes;
using testing_util::ScratchDir;
using testing_util::WriteBytes;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kDataLoss = absl::StatusCode::kDataLoss;

// One U8 tensor "a" of 4 bytes and one F32 scalar "b".
std::string SmallFile() {
  return SafetensorsBytes(
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[],"data_offsets":[4,8]}})",
      std::string("\x01\x02\x03\x04\x00\x00\x80\x3f", 8));
}

std::string Tensor(std::string_view name, std::string_view dtype, std::string_view shape,
                   std::string_view offsets) {
  return "\"" + std::string(name) + "\":{\"dtype\":\"" + std::string(dtype) +
         "\",\"shape\":" + std::string(shape) + ",\"data_offsets\":" + std::string(offsets) + "}";
}

struct BadFile {
  std::string label;
  std::string bytes;
  absl::StatusCode code;
  std::string substr;
};

std::vector<BadFile> BadFiles() {
  const std::string four(4, 'x');
  return {
      {"empty file", "", kDataLoss, "too short"},
      {"length only partly there", std::string(5, '\0'), kDataLoss, "too short"},
      {"header length past end", SafetensorsBytes("{}", "", 3), kDataLoss,
       "header length 3 runs past the end"},
      {"header length huge", SafetensorsBytes("{}", "", uint64_t{1} << 40), kInvalid,
       "exceeds the limit"},
      {"header length max", SafetensorsBytes("{}", "", UINT64_MAX), kInvalid, "exceeds the limit"},
      {"invalid JSON", SafetensorsBytes("{\"a\":"), kInvalid, "header: syntax error"},
      {"trailing garbage", SafetensorsBytes("{} x"), kInvalid, "syntax error"},
      {"NUL padding", SafetensorsBytes(std::string("{}\0\0", 4)), kInvalid, "syntax error"},
      {"invalid UTF-8", SafetensorsBytes("{\"\xff\":1}"), kInvalid, "syntax error"},
      {"deep nesting", SafetensorsBytes(std::string(5000, '[') + std::string(5000, ']')), kInvalid,
       "nesting deeper"},
      {"root is an array", SafetensorsBytes("[]"), kInvalid, "not a JSON object"},
      {"entry not an object", SafetensorsBytes("{\"a\":[1]}"), kInvalid,
       "tensor 'a': entry is not a JSON object"},
      {"missing dtype", SafetensorsBytes(R"({"a":{"shape":[],"data_offsets":[0,0]}})"), kInvalid,
       "tensor 'a': missing \"dtype\""},
      {"missing shape", SafetensorsBytes(R"({"a":{"dtype":"U8","data_offsets":[0,0]}})"), kInvalid,
       "tensor 'a': missing \"shape\""},
      {"missing offsets", SafetensorsBytes(R"({"a":{"dtype":"U8","shape":[0]}})"), kInvalid,
       "tensor 'a': missing \"data_offsets\""},
      {"dtype not a string",
       SafetensorsBytes(R"({"a":{"dtype":7,"shape":[4],"data_offsets":[0,4]}})", four), kInvalid,
       "tensor 'a': \"dtype\" is not a string"},
      {"unknown dtype", SafetensorsBytes("{" + Tensor("a", "F8_E4M3", "[4]", "[0,4]") + "}", four),
       kInvalid, "tensor 'a': unknown dtype \"F8_E4M3\""},
      {"shape not an array", SafetensorsBytes("{" + Tensor("a", "U8", "4", "[0,4]") + "}", four),
       kInvalid, "tensor 'a': \"shape\" is not an array"},
      {"negative dim", SafetensorsBytes("{" + Tensor("a", "U8", "[-4]", "[0,4]") + "}", four),
       kInvalid, "tensor 'a': shape entry -4 is not a non-negative integer"},
      {"float dim", SafetensorsBytes("{" + Tensor("a", "U8", "[4.0]", "[0,4]") + "}", four),
       kInvalid, "shape entry 4.0"},
      {"string dim", SafetensorsBytes("{" + Tensor("a", "U8", "[\"4\"]", "[0,4]") + "}", four),
       kInvalid, "shape entry string"},
      {"dim past int64",
       SafetensorsBytes("{" + Tensor("a", "U8", "[9223372036854775808]", "[0,4]") + "}", four),
       kInvalid, "not a non-negative integer"},
      {"shape product overflow",
       SafetensorsBytes("{" + Tensor("a", "F32", "[4294967296,4294967296,0]", "[0,0]") + "}"),
       kInvalid, "tensor 'a': shape [4294967296,4294967296]... of F32 overflows"},
      {"offsets not a pair", SafetensorsBytes("{" + Tensor("a", "U8", "[4]", "[0,4,8]") + "}"),
       kInvalid, "tensor 'a': \"data_offsets\" is not an array of two integers"},
      {"negative offset", SafetensorsBytes("{" + Tensor("a", "U8", "[0]", "[-1,-1]") + "}"),
       kInvalid, "tensor 'a': \"data_offsets\" are not non-negative integers"},
      {"offsets reversed", SafetensorsBytes("{" + Tensor("a", "U8", "[0]", "[4,0]") + "}", four),
       kInvalid, "tensor 'a': data_offsets [4,0] end before they begin"},
      {"shape and offsets disagree",
       SafetensorsBytes("{" + Tensor("a", "F32", "[2]", "[0,4]") + "}", four), kInvalid,
       "tensor 'a': data_offsets [0,4] hold 4 bytes but shape [2] of F32 needs 8"},
      {"offsets past the data",
       SafetensorsBytes("{" + Tensor("a", "U8", "[8]", "[0,8]") + "}", four), kDataLoss,
       "tensor 'a': data_offsets [0,8] run past the end of the 4-byte data section"},
      {"offsets far past the data",
       SafetensorsBytes("{" +
                            Tensor("a", "U8", "[4]",
                                   "[18446744073709551611,"
                                   "18446744073709551615]") +
                            "}",
                        four),
       kInvalid, "tensor 'a': \"data_offsets\" are not non-negative integers"},
      {"offsets at the end of int64",
       SafetensorsBytes("{" +
                            Tensor("a", "U8", "[4]",
                                   "[9223372036854775803,"
                                   "9223372036854775807]") +
                            "}",
                        four),
       kDataLoss, "tensor 'a': data_offsets [9223372036854775803,9223372036854775807] run past"},
      {"overlap",
       SafetensorsBytes(
           "{" + Tensor("a", "U8", "[4]", "[0,4]") + "," + Tensor("b", "U8", "[2]", "[2,4]") + "}",
           four),
       kInvalid, "tensor 'b': data_offsets [2,4] overlap tensor 'a'"},
      {"same range twice",
       SafetensorsBytes(
           "{" + Tensor("a", "U8", "[4]", "[0,4]") + "," + Tensor("b", "I8", "[4]", "[0,4]") + "}",
           four),
       kInvalid, "tensor 'b': data_offsets [0,4] overlap tensor 'a'"},
      {"gap", SafetensorsBytes("{" + Tensor("a", "U8", "[2]", "[2,4]") + "}", four), kInvalid,
       "tensor 'a': data_offsets [2,4] leave a gap of 2 bytes"},
      {"trailing data", SafetensorsBytes("{" + Tensor("a", "U8", "[2]", "[0,2]") + "}", four),
       kInvalid, "tensors cover 2 of the 4 data bytes"},
      {"duplicate names",
       SafetensorsBytes(
           "{" + Tensor("a", "U8", "[2]", "[0,2]") + "," + Tensor("a", "U8", "[2]", "[2,4]") + "}",
           four),
       kInvalid, "duplicate key \"a\""},
      {"duplicate key inside an entry",
       SafetensorsBytes(R"({"a":{"dtype":"U8","dtype":"I8","shape":[4],"data_offsets":[0,4]}})",
                        four),
       kInvalid, "duplicate key \"dtype\""},
      {"duplicate metadata", SafetensorsBytes(R"({"__metadata__":{},"__metadata__":{}})"), kInvalid,
       "duplicate key \"__metadata__\""},
      {"metadata not an object", SafetensorsBytes(R"({"__metadata__":"x"})"), kInvalid,
       "\"__metadata__\" is not a JSON object"},
      {"metadata value not a string", SafetensorsBytes(R"({"__metadata__":{"k":1}})"), kInvalid,
       "\"__metadata__\" value of key 'k' is not a string"},
      {"metadata nested", SafetensorsBytes(R"({"__metadata__":{"k":{"x":"y"}}})"), kInvalid,
       "value of key 'k' is not a string"},
  };
}

class BadFileTest : public ::testing::TestWithParam<BadFile> {};

TEST_P(BadFileTest, FailsWithCodeAndMessage) {
  ScratchDir dir;
  auto path = dir / "bad.safetensors";
  WriteBytes(path, GetParam().bytes);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), GetParam().code) << file.status();
  EXPECT_THAT(file.status().message(), HasSubstr(GetParam().substr));
  EXPECT_THAT(file.status().message(), HasSubstr(path.string()));
}

INSTANTIATE_TEST_SUITE_P(Table, BadFileTest, ::testing::ValuesIn(BadFiles()),
                         [](const ::testing::TestParamInfo<BadFile>& info) {
                           std::string name;
                           for (char c : info.param.label)
                             name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(SafetensorsRobustnessTest, AcceptsWhatTheReferenceAccepts) {
  ScratchDir dir;
  auto path = dir / "ok.safetensors";
  // Small file, unknown keys inside an entry, null metadata, zero-size tensors sharing an
  // offset, an empty header, leading whitespace.
  std::vector<std::string> good = {
      SmallFile(),
      SafetensorsBytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"extra":[1]}})",
                       "abcd"),
      SafetensorsBytes(R"({"__metadata__":null})"),
      SafetensorsBytes("{" + Tensor("a", "U8", "[0]", "[0,0]") + "," +
                       Tensor("b", "F32", "[0,3]", "[0,0]") + "}"),
      SafetensorsBytes("{}"),
      SafetensorsBytes(" {}      "),
  };
  for (const std::string& bytes : good) {
    WriteBytes(path, bytes);
    auto file = SafetensorsFile::Open(path);
    EXPECT_TRUE(file.ok()) << file.status();
  }
  WriteBytes(path, SmallFile());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->metadata().at("k"), "v");
  std::vector<float> b(1);
  ASSERT_TRUE(ReadAsFloat32(*file->Find("b"), b).ok());
  EXPECT_EQ(b[0], 1.0f);
}

TEST(SafetensorsRobustnessTest, TruncationAtEveryByteIsDataLoss) {
  ScratchDir dir;
  auto path = dir / "cut.safetensors";
  const std::string whole = SmallFile();
  for (size_t len = 0; len < whole.size(); ++len) {
    WriteBytes(path, whole.substr(0, len));
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok()) << "length " << len;
    EXPECT_EQ(file.status().code(), kDataLoss) << "length " << len << ": " << file.status();
  }
}

TEST(SafetensorsRobustnessTest, MissingFileIsNotFound) {
  ScratchDir dir;
  auto file = SafetensorsFile::Open(dir / "nope.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
}

// Checkpoint folders built by hand.
class CheckpointTest : public ::testing::Test {
 protected:
  void Shard(std::string_view name, std::vector<std::string> tensors) {
    std::string header = "{";
    std::string data;
    for (const std::string& t : tensors) {
      if (header.size() > 1) header += ",";
      header +=
          Tensor(t, "U8", "[1]",
                 "[" + std::to_string(data.size()) + "," + std::to_string(data.size() + 1) + "]");
      data += 'x';
    }
    WriteBytes(dir_ / name, SafetensorsBytes(header + "}", data));
  }
  void Index(std::string_view json) { WriteBytes(dir_ / "model.safetensors.index.json", json); }
  absl::Status Open() { return SafetensorsCheckpoint::Open(dir_.path()).status(); }

  ScratchDir dir_;
};

TEST_F(CheckpointTest, OpensAValidIndex) {
  Shard("s1.safetensors", {"a", "b"});
  Shard("s2.safetensors", {"c"});
  Index(R"({"metadata":{"total_size":3},"weight_map":{"a":"s1.safetensors",)"
        R"("b":"s1.safetensors","c":"s2.safetensors"}})");
  auto checkpoint = SafetensorsCheckpoint::Open(dir_.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT(checkpoint->TensorNames(), ::testing::ElementsAre("a", "b", "c"));
  ASSERT_NE(checkpoint->Find("c"), nullptr);
  EXPECT_EQ(checkpoint->Find("c")->data.size(), 1u);
}

TEST_F(CheckpointTest, EmptyFolderIsNotFound) {
  absl::Status status = Open();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("model.safetensors.index.json"));
}

TEST_F(CheckpointTest, MissingShard) {
  Shard("s1.safetensors", {"a"});
  Index(R"({"weight_map":{"a":"s1.safetensors","b":"gone.safetensors"}})");
  absl::Status status = Open();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("shard 'gone.safetensors' (holding 'b')"));
}

TEST_F(CheckpointTest, TensorMissingFromItsShard) {
  Shard("s1.safetensors", {"a"});
  Index(R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})");
  absl::Status status = Open();
  EXPECT_EQ(status.code(), kInvalid);
  EXPECT_THAT(status.message(),
              HasSubstr("maps tensor 'b' to shard 's1.safetensors', which does not contain it"));
}

TEST_F(CheckpointTest, TensorInTheWrongShard) {
  Shard("s1.safetensors", {"a"});
  Shard("s2.safetensors", {"b"});
  Index(R"({"weight_map":{"a":"s2.safetensors","b":"s2.safetensors"}})");
  absl::Status status = Open();
  EXPECT_EQ(status.code(), kInvalid);
  EXPECT_THAT(status.message(), HasSubstr("tensor 'a' to shard 's2.safetensors'"));
}

TEST_F(CheckpointTest, TensorInTwoShards) {
  Shard("s1.safetensors", {"a", "b"});
  Shard("s2.safetensors", {"b"});
  Index(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  absl::Status status = Open();
  EXPECT_EQ(status.code(), kInvalid);
  EXPECT_THAT(status.message(),
              HasSubstr("tensor 'b' is in both shard 's1.safetensors' and shard 's2.safetensors'"));
}

TEST_F(CheckpointTest, ShardNamesMayNotLeaveTheFolder) {
  Shard("s1.safetensors", {"a"});
  for (std::string shard :
       {"../s1.safetensors", "/etc/passwd", "sub/s1.safetensors", "..", ".", "", "a\\\\b"}) {
    SCOPED_TRACE(shard);
    Index(R"({"weight_map":{"a":")" + shard + R"("}})");
    absl::Status status = Open();
    EXPECT_EQ(status.code(), kInvalid);
    EXPECT_THAT(status.message(), HasSubstr("is not a file name inside the checkpoint folder"));
  }
}

TEST_F(CheckpointTest, MalformedIndex) {
  Shard("s1.safetensors", {"a"});
  struct Case {
    std::string json, substr;
  };
  for (const Case& c : std::vector<Case>{
           {"{", "index: syntax error"},
           {"[]", "index is not a JSON object"},
           {R"({"metadata":{}})", "no \"weight_map\" object"},
           {R"({"weight_map":[]})", "no \"weight_map\" object"},
           {R"({"weight_map":{"a":1}})", "weight_map entry for tensor 'a' is not a string"},
           {R"({"weight_map":{"a":"s1.safetensors","a":"s1.safetensors"}})", "duplicate key \"a\""},
       }) {
    SCOPED_TRACE(c.json);
    Index(c.json);
    absl::Status status = Open();
    EXPECT_EQ(status.code(), kInvalid);
    EXPECT_THAT(status.message(), HasSubstr(c.substr));
    EXPECT_THAT(status.message(), HasSubstr("model.safetensors.index.json"));
  }
}

TEST_F(CheckpointTest, BadShardIsReportedWithItsName) {
  WriteBytes(dir_ / "s1.safetensors", SafetensorsBytes("{\"a\":"));
  Index(R"({"weight_map":{"a":"s1.safetensors"}})");
  absl::Status status = Open();
  EXPECT_EQ(status.code(), kInvalid);
  EXPECT_THAT(status.message(), HasSubstr("shard 's1.safetensors'"));
  EXPECT_THAT(status.message(), HasSubstr("syntax error"));
}

}  // namespace
}  // namespace t2::formats
