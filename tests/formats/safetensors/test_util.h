// Helpers shared by the safetensors test files.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "testing/scratch_dir.h"

namespace t2::formats::testing_util {

using ::t2::testing::ScratchDir;

inline std::string ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteBytes(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// The 8-byte little-endian header length (`header.size()` unless given), header, data.
inline std::string SafetensorsBytes(std::string_view header, std::string_view data = {},
                                    std::optional<uint64_t> header_len = std::nullopt) {
  uint64_t n = header_len.value_or(header.size());
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  bytes.append(header);
  bytes.append(data);
  return bytes;
}

inline std::string AsString(std::span<const uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// $T2_FIXTURES/safetensors, or nullopt when the tests run outside ctest.
inline std::optional<std::filesystem::path> FixturesDir() {
  const char* root = std::getenv("T2_FIXTURES");
  if (root == nullptr || *root == '\0') return std::nullopt;
  return std::filesystem::path(root) / "safetensors";
}

}  // namespace t2::formats::testing_util
