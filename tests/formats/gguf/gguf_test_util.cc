#include "gguf_test_util.h"

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "testing/scratch_dir.h"

namespace t2::formats::testing_util {

std::filesystem::path FixturesDir() {
  const char* env = std::getenv("T2_FIXTURES");
  return std::filesystem::path(env != nullptr ? env : "fixtures") / "gguf";
}

std::filesystem::path DefaultModelPath() {
  std::filesystem::path home;
  if (const char* t2_home = std::getenv("T2_HOME"); t2_home != nullptr && *t2_home != '\0') {
    home = t2_home;
  } else {
    const char* user_home = std::getenv("HOME");
    home = std::filesystem::path(user_home != nullptr ? user_home : "/root") / ".cache/t2serve";
  }
  return home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::vector<uint8_t> ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path << " (did gguf_fixtures_make run?)";
    return {};
  }
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<float> ReadFloats(const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = ReadBytes(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

std::vector<uint16_t> ReadU16s(const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = ReadBytes(path);
  std::vector<uint16_t> out(bytes.size() / sizeof(uint16_t));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(uint16_t));
  return out;
}

std::filesystem::path WriteTemp(const std::string& name, std::span<const uint8_t> bytes) {
  // A folder of this process's own: another build's or checkout's gguf_test may run at the
  // same time, and a shared "/tmp/valid.gguf" could be rewritten while this one reads it.
  static const t2::testing::ScratchDir dir;
  const std::filesystem::path path = dir / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return path;
}

::testing::AssertionResult BitEqual(std::span<const float> got, std::span<const float> want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  }
  size_t mismatches = 0;
  auto failure = ::testing::AssertionFailure();
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) && std::isnan(want[i])) continue;
    const auto g = std::bit_cast<uint32_t>(got[i]);
    const auto w = std::bit_cast<uint32_t>(want[i]);
    if (g == w) continue;
    if (++mismatches <= 5) {
      failure << "\n  [" << i << "] got " << got[i] << " (0x" << std::hex << g << ") want "
              << want[i] << " (0x" << w << std::dec << ")";
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return failure << "\n  " << mismatches << " of " << got.size() << " elements differ";
}

}  // namespace t2::formats::testing_util
