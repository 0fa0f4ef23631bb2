// Reads the raw arrays and manifests make_reference.py writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace t2::testing {

// $T2_FIXTURES/<sub>; fails the test (via ADD_FAILURE) when the variable is unset.
std::filesystem::path FixturesDir(const std::string& sub);
// $T2_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf (T2_HOME defaults to ~/.cache/t2serve).
std::filesystem::path DefaultModelPath();
nlohmann::json ReadJson(const std::filesystem::path& path);
std::vector<float> ReadFloats(const std::filesystem::path& path);

}  // namespace t2::testing
