// GgufFile::Open on malformed input: a small valid GGUF is built here byte by byte, then
// corrupted one way per case. Every case must fail cleanly with a specific code and a message
// naming the problem (and nothing may crash: the suite also runs under ASan+UBSan).
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gguf_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "t2/formats/dequantize.h"
#include "t2/formats/gguf.h"

namespace t2::formats {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"

// Little-endian byte encoders.
void PutU32(std::vector<uint8_t>* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void PutU64(std::vector<uint8_t>* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void PutString(std::vector<uint8_t>* out, const std::string& s) {
  PutU64(out, s.size());
  out->insert(out->end(), s.begin(), s.end());
}

// Encoded (type id + payload) metadata values.
std::vector<uint8_t> U32Value(uint32_t v) {
  std::vector<uint8_t> out;
  PutU32(&out, static_cast<uint32_t>(GgufValueType::kUint32));
  PutU32(&out, v);
  return out;
}
std::vector<uint8_t> StringValue(const std::string& s) {
  std::vector<uint8_t> out;
  PutU32(&out, static_cast<uint32_t>(GgufValueType::kString));
  PutString(&out, s);
  return out;
}
std::vector<uint8_t> U32ArrayValue(const std::vector<uint32_t>& values,
                                   std::optional<uint64_t> count = std::nullopt) {
  std::vector<uint8_t> out;
  PutU32(&out, static_cast<uint32_t>(GgufValueType::kArray));
  PutU32(&out, static_cast<uint32_t>(GgufValueType::kUint32));
  PutU64(&out, count.value_or(values.size()));
  for (uint32_t v : values) PutU32(&out, v);
  return out;
}
std::vector<uint8_t> StringArrayValue(const std::vector<std::string>& values) {
  std::vector<uint8_t> out;
  PutU32(&out, static_cast<uint32_t>(GgufValueType::kArray));
  PutU32(&out, static_cast<uint32_t>(GgufValueType::kString));
  PutU64(&out, values.size());
  for (const auto& v : values) PutString(&out, v);
  return out;
}

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;
  std::optional<uint32_t> n_dims;  // written instead of ne.size() when set
};

// A GGUF file described field by field, so a test can corrupt any one of them.
struct Spec {
  uint32_t magic = kMagic;
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors, n_kv;  // header counts, when not the true ones
  std::vector<std::pair<std::string, std::vector<uint8_t>>> kvs;
  std::vector<TensorSpec> tensors;
  uint64_t alignment = 32;  // used for the padding before the data section
  std::vector<uint8_t> data;

  std::vector<uint8_t> Build(size_t* data_start = nullptr) const {
    std::vector<uint8_t> out;
    PutU32(&out, magic);
    PutU32(&out, version);
    PutU64(&out, n_tensors.value_or(tensors.size()));
    PutU64(&out, n_kv.value_or(kvs.size()));
    for (const auto& [key, value] : kvs) {
      PutString(&out, key);
      out.insert(out.end(), value.begin(), value.end());
    }
    for (const TensorSpec& t : tensors) {
      PutString(&out, t.name);
      PutU32(&out, t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
      for (uint64_t n : t.ne) PutU64(&out, n);
      PutU32(&out, t.type);
      PutU64(&out, t.offset);
    }
    while (alignment > 0 && out.size() % alignment != 0) out.push_back(0);
    if (data_start != nullptr) *data_start = out.size();
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }
};

// Two tensors: "a" F32 [2 rows × 8] at 0 (64 bytes) and "b" one Q8_0 block at 64 (34 bytes),
// then padding to 128 data bytes.
Spec ValidSpec() {
  Spec s;
  s.kvs.emplace_back("general.architecture", StringValue("t2"));
  s.kvs.emplace_back("t.u32", U32Value(7));
  s.kvs.emplace_back("t.arr", U32ArrayValue({1, 2, 3}));
  s.kvs.emplace_back("t.strs", StringArrayValue({"a", "bc"}));
  s.tensors.push_back({"a", {8, 2}, static_cast<uint32_t>(GgmlType::kF32), 0, std::nullopt});
  s.tensors.push_back({"b", {32}, static_cast<uint32_t>(GgmlType::kQ8_0), 64, std::nullopt});
  s.data.resize(128, 0);
  for (int i = 0; i < 16; ++i) {
    const float v = static_cast<float>(i) * 0.5f;
    std::memcpy(&s.data[4 * i], &v, 4);
  }
  s.data[64] = 0x00;
  s.data[65] = 0x3C;  // d = 1.0 in f16
  for (int j = 0; j < 32; ++j) s.data[66 + j] = static_cast<uint8_t>(j - 16);
  return s;
}

absl::Status OpenBytes(const std::vector<uint8_t>& bytes, const std::string& name = "case.gguf") {
  return GgufFile::Open(testing_util::WriteTemp(name, bytes)).status();
}

TEST(GgufCorruptTest, ValidBaseFileParses) {
  const auto path = testing_util::WriteTemp("valid.gguf", ValidSpec().Build());
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(*file->GetString("general.architecture"), "t2");
  EXPECT_EQ(file->GetIntArray("t.arr")->size(), 3u);
  ASSERT_EQ(file->tensors().size(), 2u);
  const GgufTensorInfo* a = file->FindTensor("a");
  ASSERT_NE(a, nullptr);
  std::vector<float> values(16);
  ASSERT_TRUE(Dequantize(a->type, a->data, values).ok());
  EXPECT_EQ(values[15], 7.5f);
  const GgufTensorInfo* b = file->FindTensor("b");
  ASSERT_NE(b, nullptr);
  std::vector<float> qvalues(32);
  ASSERT_TRUE(Dequantize(b->type, b->data, qvalues).ok());
  EXPECT_EQ(qvalues[0], -16.0f);
  EXPECT_EQ(qvalues[31], 15.0f);
}

TEST(GgufCorruptTest, Version2AndNoTensorsAreValid) {
  Spec v2 = ValidSpec();
  v2.version = 2;
  EXPECT_TRUE(OpenBytes(v2.Build()).ok());

  Spec empty = ValidSpec();
  empty.tensors.clear();
  empty.data.clear();
  empty.alignment = 0;  // no padding: a file without tensors needs no data section
  EXPECT_TRUE(OpenBytes(empty.Build()).ok());
}

TEST(GgufCorruptTest, EveryTruncationFailsWithDataLoss) {
  size_t data_start = 0;
  const std::vector<uint8_t> full = ValidSpec().Build(&data_start);
  // Past the last tensor's bytes only the trailing padding is missing, which is harmless.
  const size_t needed = data_start + 64 + 34;
  for (size_t len = 0; len < needed; ++len) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + len);
    const absl::Status s = OpenBytes(prefix, "truncated.gguf");
    ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << "length " << len << ": " << s;
    ASSERT_FALSE(s.message().empty());
  }
  for (size_t len = needed; len <= full.size(); ++len) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + len);
    ASSERT_TRUE(OpenBytes(prefix, "truncated.gguf").ok()) << "length " << len;
  }
}

struct CorruptCase {
  std::string name;
  std::function<std::vector<uint8_t>()> make;
  absl::StatusCode code;
  std::vector<std::string> message_parts;
};

// Builds ValidSpec() after `edit`.
std::function<std::vector<uint8_t>()> Edited(std::function<void(Spec&)> edit) {
  return [edit] {
    Spec s = ValidSpec();
    edit(s);
    return s.Build();
  };
}

std::vector<uint8_t> AlignmentValue(uint32_t a) { return U32Value(a); }

std::vector<CorruptCase> Cases() {
  using Code = absl::StatusCode;
  std::vector<CorruptCase> cases = {
      {"BadMagic",
       Edited([](Spec& s) { s.magic = 0x46554746; }),
       Code::kInvalidArgument,
       {"bad magic"}},
      {"Version1",
       Edited([](Spec& s) { s.version = 1; }),
       Code::kInvalidArgument,
       {"version 1", "supported: 2 and 3"}},
      {"Version4", Edited([](Spec& s) { s.version = 4; }), Code::kInvalidArgument, {"version 4"}},
      {"BigEndian",
       Edited([](Spec& s) { s.version = 0x03000000; }),
       Code::kInvalidArgument,
       {"big-endian"}},
      {"EmptyFile", [] { return std::vector<uint8_t>{}; }, Code::kDataLoss, {"magic"}},
      {"KeyLengthPastEnd",
       [] {
         std::vector<uint8_t> out = ValidSpec().Build();
         // The first key's length field sits right after the 24-byte header.
         const uint64_t huge = uint64_t{1} << 40;
         std::memcpy(&out[24], &huge, 8);
         return out;
       },
       Code::kDataLoss,
       {"metadata key #0", "length 1099511627776"}},
      {"StringValueLengthPastEnd",
       Edited([](Spec& s) {
         std::vector<uint8_t> v;
         PutU32(&v, static_cast<uint32_t>(GgufValueType::kString));
         PutU64(&v, ~uint64_t{0});
         s.kvs.emplace_back("t.s", v);
       }),
       Code::kDataLoss,
       {"'t.s'", "length 18446744073709551615"}},
      {"ArrayCountHuge",
       Edited([](Spec& s) {
         s.kvs[2].second = U32ArrayValue({1, 2, 3}, uint64_t{1} << 60);
       }),
       Code::kDataLoss,
       {"'t.arr'", "claims 1152921504606846976"}},
      {"StringArrayCountHuge",
       Edited([](Spec& s) {
         std::vector<uint8_t> v;
         PutU32(&v, static_cast<uint32_t>(GgufValueType::kArray));
         PutU32(&v, static_cast<uint32_t>(GgufValueType::kString));
         PutU64(&v, 100);  // needs >= 800 bytes
         s.kvs.emplace_back("t.many", v);
       }),
       Code::kDataLoss,
       {"'t.many'", "claims 100 string"}},
      {"KvCountHuge",
       Edited([](Spec& s) { s.n_kv = ~uint64_t{0}; }),
       Code::kDataLoss,
       {"metadata entries"}},
      {"TensorCountHuge",
       Edited([](Spec& s) { s.n_tensors = uint64_t{1} << 62; }),
       Code::kDataLoss,
       {"tensors"}},
      {"UnknownValueType",
       Edited([](Spec& s) {
         std::vector<uint8_t> v;
         PutU32(&v, 13);
         PutU32(&v, 0);
         s.kvs.emplace_back("t.x", v);
       }),
       Code::kInvalidArgument,
       {"'t.x'", "unknown value type 13"}},
      {"UnknownArrayElementType",
       Edited([](Spec& s) {
         std::vector<uint8_t> v;
         PutU32(&v, static_cast<uint32_t>(GgufValueType::kArray));
         PutU32(&v, 77);
         PutU64(&v, 0);
         s.kvs.emplace_back("t.x", v);
       }),
       Code::kInvalidArgument,
       {"'t.x'", "unknown element type 77"}},
      {"ArraysNestedTooDeep",
       Edited([](Spec& s) {
         std::vector<uint8_t> v;
         PutU32(&v, static_cast<uint32_t>(GgufValueType::kArray));
         for (int i = 0; i < 100; ++i) {
           PutU32(&v, static_cast<uint32_t>(GgufValueType::kArray));
           PutU64(&v, 1);
         }
         PutU32(&v, static_cast<uint32_t>(GgufValueType::kUint8));
         PutU64(&v, 0);
         s.kvs.emplace_back("t.deep", v);
       }),
       Code::kInvalidArgument,
       {"'t.deep'", "nested deeper"}},
      {"BoolNotZeroOrOne",
       Edited([](Spec& s) {
         std::vector<uint8_t> v;
         PutU32(&v, static_cast<uint32_t>(GgufValueType::kBool));
         v.push_back(2);
         s.kvs.emplace_back("t.b", v);
       }),
       Code::kInvalidArgument,
       {"'t.b'", "must be 0 or 1"}},
      {"DuplicateKey",
       Edited([](Spec& s) { s.kvs.emplace_back("t.u32", U32Value(8)); }),
       Code::kInvalidArgument,
       {"duplicate metadata key 't.u32'"}},
      {"AlignmentZero",
       Edited([](Spec& s) { s.kvs.emplace_back("general.alignment", AlignmentValue(0)); }),
       Code::kInvalidArgument,
       {"general.alignment", "is 0", "power of two"}},
      {"AlignmentThree",
       Edited([](Spec& s) { s.kvs.emplace_back("general.alignment", AlignmentValue(3)); }),
       Code::kInvalidArgument,
       {"general.alignment", "is 3", "power of two"}},
      {"AlignmentNotInteger",
       Edited([](Spec& s) { s.kvs.emplace_back("general.alignment", StringValue("32")); }),
       Code::kInvalidArgument,
       {"general.alignment", "must be an integer"}},
      {"DuplicateTensorName",
       Edited([](Spec& s) { s.tensors[1].name = "a"; }),
       Code::kInvalidArgument,
       {"duplicate tensor name 'a'"}},
      {"NDims5",
       Edited([](Spec& s) {
         s.tensors[1].ne = {32, 1, 1, 1, 1};
       }),
       Code::kInvalidArgument,
       {"tensor 'b'", "n_dims 5"}},
      {"NDimsHugeWithoutDims",
       Edited([](Spec& s) { s.tensors[0].n_dims = 0xFFFFFFFF; }),
       Code::kInvalidArgument,
       {"tensor 'a'", "n_dims 4294967295"}},
      {"DimensionZero",
       Edited([](Spec& s) {
         s.tensors[0].ne = {8, 0};
       }),
       Code::kInvalidArgument,
       {"tensor 'a'", "dimension 1 is 0"}},
      {"ElementCountOverflow",
       Edited([](Spec& s) {
         s.tensors[0].ne = {uint64_t{1} << 32, uint64_t{1} << 32};
       }),
       Code::kInvalidArgument,
       {"tensor 'a'", "element count overflows"}},
      {"ByteSizeOverflow",
       Edited([](Spec& s) {
         s.tensors[0].ne = {uint64_t{1} << 31, uint64_t{1} << 31};
       }),
       Code::kInvalidArgument,
       {"tensor 'a'", "byte size overflows"}},
      {"RowNotMultipleOfBlock",
       Edited([](Spec& s) {
         s.tensors[1].ne = {16, 2};
       }),
       Code::kInvalidArgument,
       {"tensor 'b'", "row length 16", "Q8_0 block size 32"}},
      {"UnknownTensorType",
       Edited([](Spec& s) { s.tensors[0].type = 99; }),
       Code::kInvalidArgument,
       {"tensor 'a'", "type id 99"}},
      {"UnsupportedTensorType",
       Edited([](Spec& s) { s.tensors[0].type = 10; }),  // Q2_K
       Code::kInvalidArgument,
       {"tensor 'a'", "type id 10"}},
      {"MisalignedOffset",
       Edited([](Spec& s) { s.tensors[1].offset = 65; }),
       Code::kInvalidArgument,
       {"tensor 'b'", "offset 65", "alignment 32"}},
      {"OffsetOutsideData",
       Edited([](Spec& s) { s.tensors[1].offset = 4096; }),
       Code::kDataLoss,
       {"tensor 'b'", "offset 4096", "past the end"}},
      {"OffsetHuge",
       Edited([](Spec& s) { s.tensors[1].offset = ~uint64_t{31}; }),
       Code::kDataLoss,
       {"tensor 'b'", "past the end"}},
      {"TensorEndsPastData",
       Edited([](Spec& s) { s.tensors[1].offset = 96; }),
       Code::kDataLoss,
       {"tensor 'b'", "offset 96", "past the end"}},
      {"OverlappingTensors",
       Edited([](Spec& s) { s.tensors[1].offset = 32; }),
       Code::kInvalidArgument,
       {"'a'", "'b'", "overlap"}},
      {"OverlappingTensorsOutOfOrder",
       Edited([](Spec& s) {
         s.tensors[0].offset = 64;
         s.tensors[1].offset = 32;  // b: [32, 66) runs into a: [64, 128)
       }),
       Code::kInvalidArgument,
       {"'a'", "'b'", "overlap"}},
  };
  return cases;
}

class GgufCorruptTableTest : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(GgufCorruptTableTest, FailsWithSpecificError) {
  const CorruptCase& c = GetParam();
  const absl::Status s = OpenBytes(c.make(), c.name + ".gguf");
  EXPECT_EQ(s.code(), c.code) << s;
  for (const std::string& part : c.message_parts) {
    EXPECT_THAT(std::string(s.message()), HasSubstr(part));
  }
  // The path leads the message, so a log line says which file was bad.
  EXPECT_THAT(std::string(s.message()), HasSubstr(c.name + ".gguf: "));
}

INSTANTIATE_TEST_SUITE_P(Table, GgufCorruptTableTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

// Cheap deterministic fuzzing for the sanitizer build: random byte edits of the valid file
// must parse or fail cleanly, and whatever parses must have in-bounds tensor data.
TEST(GgufCorruptTest, RandomByteEditsNeverCrash) {
  const std::vector<uint8_t> base = ValidSpec().Build();
  std::mt19937_64 rng(1234);
  int parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> bytes = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % bytes.size();
      switch (rng() % 3) {
        case 0:
          bytes[pos] = static_cast<uint8_t>(rng());
          break;
        case 1:
          bytes[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        default:
          bytes[pos] = (rng() % 2) ? 0xFF : 0x00;
          break;
      }
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    auto file = GgufFile::Open(testing_util::WriteTemp("fuzz.gguf", bytes));
    if (!file.ok()) {
      ASSERT_TRUE(file.status().code() == absl::StatusCode::kInvalidArgument ||
                  file.status().code() == absl::StatusCode::kDataLoss)
          << file.status();
      continue;
    }
    ++parsed;
    for (const GgufTensorInfo& t : file->tensors()) {
      std::vector<float> out(t.n_elements);
      ASSERT_TRUE(Dequantize(t.type, t.data, out).ok()) << t.name;
    }
  }
  EXPECT_GT(parsed, 0);  // some edits hit only data bytes or values
}

}  // namespace
}  // namespace t2::formats
