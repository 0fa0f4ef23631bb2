#include "testing/process.h"

#include <unistd.h>

#include <random>

namespace t2::testing {

std::filesystem::path MakeTempDir(const std::string& prefix) {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto dir = std::filesystem::temp_directory_path() /
               (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000));
    std::error_code ec;
    if (std::filesystem::create_directories(dir, ec)) return dir;
  }
  return {};
}

}  // namespace t2::testing
