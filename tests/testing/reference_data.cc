#include "testing/reference_data.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "t2/common/env.h"

namespace t2::testing {

std::filesystem::path FixturesDir(const std::string& sub) {
  const char* dir = std::getenv("T2_FIXTURES");
  if (dir == nullptr) {
    ADD_FAILURE() << "T2_FIXTURES is not set; run through ctest";
    return {};
  }
  return std::filesystem::path(dir) / sub;
}

std::filesystem::path DefaultModelPath() {
  return T2Home() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

nlohmann::json ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return nlohmann::json::parse(buffer.str());
}

std::vector<float> ReadFloats(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  auto bytes = static_cast<size_t>(in.tellg());
  std::vector<float> out(bytes / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(float)));
  return out;
}

}  // namespace t2::testing
