// safetensors against the reference implementation (the Python `safetensors` package), both
// ways: files it wrote are read here, and files WriteSafetensors writes are read back by it.

#include "t2/formats/safetensors.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

namespace t2::formats {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::AsString;
using testing_util::FixturesDir;
using testing_util::ReadBytes;
using testing_util::ScratchDir;

// Bitwise float equality, except that any NaN matches any NaN (payloads are not part of the
// contract of the F16/BF16 converters).
void ExpectSameFloats(std::span<const float> got, const std::string& want_bytes,
                      const std::string& name) {
  ASSERT_EQ(got.size() * sizeof(float), want_bytes.size()) << name;
  for (size_t i = 0; i < got.size(); ++i) {
    float want;
    std::memcpy(&want, want_bytes.data() + i * sizeof(float), sizeof(float));
    if (std::isnan(want) && std::isnan(got[i])) continue;
    uint32_t got_bits, want_bits;
    std::memcpy(&got_bits, &got[i], 4);
    std::memcpy(&want_bits, &want, 4);
    ASSERT_EQ(got_bits, want_bits) << name << "[" << i << "]: got " << got[i] << ", want " << want;
  }
}

// Checks every tensor `expected` (written by make_fixtures.py) lists against `find`.
void ExpectMatchesReference(
    const std::filesystem::path& dir, const nlohmann::json& expected,
    const std::function<const SafetensorsTensor*(const std::string&)>& find) {
  for (const auto& [name, want] : expected["tensors"].items()) {
    SCOPED_TRACE(name);
    const SafetensorsTensor* t = find(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->name, name);
    EXPECT_EQ(DTypeName(t->dtype), want["dtype"].get<std::string>());
    EXPECT_EQ(t->shape, want["shape"].get<std::vector<int64_t>>());
    int64_t n = 1;
    for (int64_t d : t->shape) n *= d;
    EXPECT_EQ(t->NumElements(), n);
    EXPECT_EQ(AsString(t->data), ReadBytes(dir / want["raw"].get<std::string>()));

    std::vector<float> floats(static_cast<size_t>(n));
    absl::Status status = ReadAsFloat32(*t, floats);
    if (want["f32"].is_null()) {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(status.message(), HasSubstr(name));
    } else {
      ASSERT_TRUE(status.ok()) << status;
      ExpectSameFloats(floats, ReadBytes(dir / want["f32"].get<std::string>()), name);
    }
  }
}

nlohmann::json LoadJson(const std::filesystem::path& path) {
  return nlohmann::json::parse(ReadBytes(path));
}

TEST(SafetensorsReferenceTest, ReadsEveryDTypeTheReferenceWrote) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "T2_FIXTURES not set (run through ctest)";
  nlohmann::json expected = LoadJson(*dir / "basic.expected.json");
  auto file = SafetensorsFile::Open(*dir / "basic.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();

  using StringMap = std::map<std::string, std::string>;
  EXPECT_EQ(file->metadata(), expected["metadata"].get<StringMap>());
  EXPECT_EQ(file->tensors().size(), expected["tensors"].size());
  ExpectMatchesReference(*dir, expected, [&](const std::string& name) { return file->Find(name); });
  EXPECT_EQ(file->Find("no.such.tensor"), nullptr);

  // tensors() is in data order: each tensor's bytes start where the previous one's end.
  const uint8_t* next = file->tensors().front().data.data();
  for (const SafetensorsTensor& t : file->tensors()) {
    EXPECT_EQ(t.data.data(), next) << t.name;
    next = t.data.data() + t.data.size();
  }
}

TEST(SafetensorsReferenceTest, OpensAShardedCheckpoint) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "T2_FIXTURES not set (run through ctest)";
  nlohmann::json expected = LoadJson(*dir / "sharded.expected.json");
  auto checkpoint = SafetensorsCheckpoint::Open(*dir / "sharded");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();

  std::vector<std::string> names;
  for (const auto& [name, unused] : expected["tensors"].items()) names.push_back(name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(checkpoint->TensorNames(), names);
  ExpectMatchesReference(*dir, expected,
                         [&](const std::string& name) { return checkpoint->Find(name); });
  EXPECT_EQ(checkpoint->Find("missing"), nullptr);
}

TEST(SafetensorsReferenceTest, OpensASingleFileCheckpoint) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "T2_FIXTURES not set (run through ctest)";
  nlohmann::json expected = LoadJson(*dir / "single.expected.json");
  auto checkpoint = SafetensorsCheckpoint::Open(*dir / "single");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT(checkpoint->TensorNames(), ElementsAre("a.weight", "b.bias"));
  ExpectMatchesReference(*dir, expected,
                         [&](const std::string& name) { return checkpoint->Find(name); });
}

// Tensors of every dtype for the writer, with awkward cases: a 1-byte tensor first so the
// rest of the data is misaligned, a 0-d scalar, zero-size tensors, a non-ASCII name.
struct WriteCase {
  std::vector<std::vector<uint8_t>> storage;
  std::vector<SafetensorsTensorView> views;
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "välue ✓"}};

  template <typename T>
  void Add(std::string name, SafetensorsDType dtype, std::vector<int64_t> shape,
           std::vector<T> values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(T));
    if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    storage.push_back(std::move(bytes));
    views.push_back({std::move(name), dtype, std::move(shape), {}});
  }
  void Finish() {
    for (size_t i = 0; i < views.size(); ++i) views[i].data = storage[i];
  }
};

WriteCase AllDTypes() {
  WriteCase c;
  c.Add<uint8_t>("u8.odd", SafetensorsDType::kU8, {1}, {7});
  c.Add<double>("f64.vec", SafetensorsDType::kF64, {3}, {0.1, -1e300, 2.5});
  c.Add<float>("f32.matrix", SafetensorsDType::kF32, {2, 3}, {1, -2, 3.5f, 0, -0.0f, 1e-40f});
  c.Add<uint16_t>("bf16.scalar", SafetensorsDType::kBF16, {}, {0x3fc0});      // 1.5
  c.Add<uint16_t>("f16.vec", SafetensorsDType::kF16, {2}, {0x3c00, 0xfc00});  // 1, -inf
  c.Add<uint16_t>("f16.empty", SafetensorsDType::kF16, {0}, {});
  c.Add<int64_t>("i64.vec", SafetensorsDType::kI64, {2}, {-1, INT64_MAX});
  c.Add<int32_t>("i32.matrix", SafetensorsDType::kI32, {2, 1}, {-5, 6});
  c.Add<int16_t>("i16.vec", SafetensorsDType::kI16, {2}, {-300, 300});
  c.Add<int8_t>("i8.vec", SafetensorsDType::kI8, {3}, {-128, 0, 127});
  c.Add<uint8_t>("bool.mask", SafetensorsDType::kBool, {2, 2}, {1, 0, 0, 1});
  c.Add<float>("名前.weight", SafetensorsDType::kF32, {1, 0, 2}, {});
  c.Finish();
  return c;
}

TEST(WriteSafetensorsTest, RoundTripsThroughTheReader) {
  ScratchDir dir;
  WriteCase c = AllDTypes();
  auto path = dir / "out.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, c.views, c.metadata).ok());

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata(), c.metadata);
  ASSERT_EQ(file->tensors().size(), c.views.size());
  for (size_t i = 0; i < c.views.size(); ++i) {
    // Written in the given order, data contiguous, so tensors() comes back in that order.
    const SafetensorsTensor& t = file->tensors()[i];
    EXPECT_EQ(t.name, c.views[i].name);
    EXPECT_EQ(t.dtype, c.views[i].dtype);
    EXPECT_EQ(t.shape, c.views[i].shape);
    EXPECT_EQ(AsString(t.data), AsString(c.views[i].data));
  }
  // Misaligned F64 data converts (no aligned loads).
  std::vector<float> f(3);
  ASSERT_TRUE(ReadAsFloat32(*file->Find("f64.vec"), f).ok());
  EXPECT_THAT(f, ElementsAre(0.1f, -std::numeric_limits<float>::infinity(), 2.5f));

  // Header: 8-aligned length, padded with spaces, keys in the given order.
  std::string bytes = ReadBytes(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.find("{\"__metadata__\":{\"format\":\"pt\""), 0u) << header;
  size_t last = 0;
  for (const auto& v : c.views) {
    size_t at = header.find("\"" + v.name + "\":{\"dtype\"");
    ASSERT_NE(at, std::string::npos) << v.name;
    EXPECT_GT(at, last) << v.name;
    last = at;
  }
  size_t close = header.find_last_of('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);
}

TEST(WriteSafetensorsTest, ReferenceImplementationReadsWhatWeWrite) {
  const char* python = std::getenv("T2_PYTHON");
  const char* source = std::getenv("T2_SOURCE_DIR");
  if (python == nullptr || *python == '\0' || source == nullptr) {
    GTEST_SKIP() << "T2_PYTHON / T2_SOURCE_DIR not set (run through ctest)";
  }
  for (bool with_metadata : {true, false}) {
    SCOPED_TRACE(with_metadata ? "with metadata" : "without metadata");
    ScratchDir dir;
    WriteCase c = AllDTypes();
    if (!with_metadata) c.metadata.clear();
    auto path = dir / "out.safetensors";
    ASSERT_TRUE(WriteSafetensors(path, c.views, c.metadata).ok());

    nlohmann::json expected;
    expected["metadata"] = c.metadata;
    expected["tensors"] = nlohmann::json::array();
    for (const auto& v : c.views) {
      expected["tensors"].push_back({{"name", v.name},
                                     {"dtype", std::string(DTypeName(v.dtype))},
                                     {"shape", v.shape},
                                     {"hex", absl::BytesToHexString(AsString(v.data))}});
    }
    testing_util::WriteBytes(dir / "expected.json", expected.dump());
    std::string command = std::string("'") + python + "' '" + source +
                          "/tests/formats/safetensors/verify_written.py' '" + path.string() +
                          "' '" + (dir / "expected.json").string() + "'";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }
}

TEST(WriteSafetensorsTest, ReplacesAtomicallyAndLeavesNoTemporaryFiles) {
  ScratchDir dir;
  auto path = dir / "model.safetensors";
  std::vector<uint8_t> old_data(16, 1), new_data(32, 2);
  SafetensorsTensorView old_view{"w", SafetensorsDType::kU8, {16}, old_data};
  SafetensorsTensorView new_view{"w", SafetensorsDType::kU8, {32}, new_data};
  ASSERT_TRUE(WriteSafetensors(path, {&old_view, 1}).ok());
  ASSERT_TRUE(WriteSafetensors(path, {&new_view, 1}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->Find("w")->data.size(), 32u);

  // A rejected write leaves the existing file untouched.
  SafetensorsTensorView bad{"w", SafetensorsDType::kF32, {16}, old_data};
  absl::Status status = WriteSafetensors(path, {&bad, 1});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'w'"));
  EXPECT_EQ(SafetensorsFile::Open(path)->Find("w")->data.size(), 32u);

  std::vector<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    entries.push_back(e.path().filename().string());
  }
  EXPECT_THAT(entries, ElementsAre("model.safetensors"));

  // A folder that does not exist: an error, not a crash.
  status = WriteSafetensors(dir / "no/such/dir/x.safetensors", {&new_view, 1});
  EXPECT_FALSE(status.ok());
}

TEST(WriteSafetensorsTest, AWriterKilledMidWriteLeavesTheOldOrTheNewFile) {
  ScratchDir dir;
  auto path = dir / "model.safetensors";
  std::vector<uint8_t> old_data(1 << 16, 'a'), new_data(4 << 20, 'b');
  SafetensorsTensorView old_view{"w", SafetensorsDType::kU8, {1 << 16}, old_data};
  SafetensorsTensorView new_view{"w", SafetensorsDType::kU8, {4 << 20}, new_data};
  ASSERT_TRUE(WriteSafetensors(path, {&old_view, 1}).ok());

  for (int delay_us : {0, 300, 2000, 8000, 30000}) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (;;) (void)WriteSafetensors(path, {&new_view, 1});
    }
    ::usleep(static_cast<useconds_t>(delay_us));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);

    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << "after " << delay_us << "us: " << file.status();
    std::string data = AsString(file->Find("w")->data);
    bool is_old = data == AsString(old_data);
    bool is_new = data == AsString(new_data);
    EXPECT_TRUE(is_old || is_new) << "after " << delay_us << "us: " << data.size() << " bytes";
  }
}

TEST(WriteSafetensorsTest, RejectsBadInput) {
  ScratchDir dir;
  std::vector<uint8_t> four(4);
  struct Case {
    std::vector<SafetensorsTensorView> views;
    std::string substr;
  };
  std::vector<Case> cases = {
      {{{"a", SafetensorsDType::kU8, {4}, four}, {"a", SafetensorsDType::kU8, {4}, four}},
       "duplicate tensor name 'a'"},
      {{{"__metadata__", SafetensorsDType::kU8, {4}, four}}, "__metadata__"},
      {{{"neg", SafetensorsDType::kU8, {-4}, four}}, "negative dimension"},
      {{{"size", SafetensorsDType::kF32, {2}, four}}, "'size': data holds 4 bytes"},
      {{{"huge", SafetensorsDType::kF64, {INT64_MAX, 4}, four}}, "overflows"},
      {{{"bad\xff utf8", SafetensorsDType::kU8, {4}, four}}, "UTF-8"},
      {{{"dtype", static_cast<SafetensorsDType>(99), {4}, four}}, "invalid dtype"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.substr);
    absl::Status status = WriteSafetensors(dir / "x.safetensors", c.views);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr(c.substr));
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "x.safetensors"));
}

TEST(ReadAsFloat32Test, RejectsWrongSizesAndDTypes) {
  std::vector<uint8_t> bytes(8);
  SafetensorsTensor t{"t", SafetensorsDType::kF32, {2}, bytes};
  std::vector<float> out(3);
  absl::Status status = ReadAsFloat32(t, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'t' has 2 elements but the output holds 3"));

  t.dtype = SafetensorsDType::kI32;
  out.resize(2);
  status = ReadAsFloat32(t, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("dtype I32"));

  t.dtype = SafetensorsDType::kF16;  // 8 bytes is 4 halves, not 2
  status = ReadAsFloat32(t, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("holds 8 bytes"));

  t.shape = {-1};
  EXPECT_EQ(t.NumElements(), -1);
  EXPECT_EQ(ReadAsFloat32(t, out).code(), absl::StatusCode::kInvalidArgument);
}

TEST(DTypeTest, NamesAndSizes) {
  EXPECT_EQ(DTypeName(SafetensorsDType::kBF16), "BF16");
  EXPECT_EQ(DTypeName(SafetensorsDType::kBool), "BOOL");
  EXPECT_EQ(DTypeSize(SafetensorsDType::kF64), 8);
  EXPECT_EQ(DTypeSize(SafetensorsDType::kI16), 2);
  EXPECT_EQ(DTypeSize(SafetensorsDType::kBool), 1);
  SafetensorsTensor scalar;
  EXPECT_EQ(scalar.NumElements(), 1);
}

}  // namespace
}  // namespace t2::formats
