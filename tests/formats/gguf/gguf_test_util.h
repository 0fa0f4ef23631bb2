// Shared helpers for the GGUF tests: fixture locations, file I/O, bitwise float comparison.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace t2::formats::testing_util {

// $T2_FIXTURES/gguf (ctest sets T2_FIXTURES; make_fixtures.py fills the folder).
std::filesystem::path FixturesDir();

// $T2_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf, T2_HOME defaulting to ~/.cache/t2serve.
std::filesystem::path DefaultModelPath();

// Whole file as bytes; fails the current test (and returns empty) if it cannot be read.
std::vector<uint8_t> ReadBytes(const std::filesystem::path& path);
std::vector<float> ReadFloats(const std::filesystem::path& path);
std::vector<uint16_t> ReadU16s(const std::filesystem::path& path);

// Writes `bytes` to `name` in a folder of this process's own under the test temp dir (removed
// when the process exits) and returns its path.
std::filesystem::path WriteTemp(const std::string& name, std::span<const uint8_t> bytes);

// Same length and, element by element, the same bit pattern (any NaN equals any NaN).
// Reports at most a few mismatches.
::testing::AssertionResult BitEqual(std::span<const float> got, std::span<const float> want);

}  // namespace t2::formats::testing_util
