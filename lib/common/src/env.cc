#include "t2/common/env.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace t2 {

std::filesystem::path T2Home() {
  if (const char* home = std::getenv("T2_HOME"); home != nullptr && *home != '\0') {
    return home;
  }
  const char* user_home = std::getenv("HOME");
  return std::filesystem::path(user_home != nullptr ? user_home : "/tmp") / ".cache" / "t2serve";
}

absl::StatusOr<std::filesystem::path> ResolveModelPath(const std::string& spec) {
  if (spec.empty()) return absl::InvalidArgumentError("model: empty path");
  if (spec == "default") {
    auto path = T2Home() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(path)) {
      return absl::NotFoundError(absl::StrCat("model: default model not found at ", path.string(),
                                              "; run scripts/setup.sh"));
    }
    return path;
  }
  std::filesystem::path path(spec);
  if (!std::filesystem::exists(path)) {
    return absl::NotFoundError(absl::StrCat("model: no such file or directory: ", spec));
  }
  return path;
}

std::string ModelName(const std::filesystem::path& model_path) {
  // A folder given with a trailing slash has an empty filename; its parent path is the folder.
  std::filesystem::path p = model_path;
  if (p.filename().empty()) p = p.parent_path();
  return p.stem().string();
}

}  // namespace t2
