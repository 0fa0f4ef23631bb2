// Locations on disk that every tool agrees on.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace t2 {

// $T2_HOME, or ~/.cache/t2serve: where scripts/setup.sh puts the default model and the
// Python environment. Never inside the git checkout.
std::filesystem::path T2Home();

// Resolves a --model argument: "default" means the bundled SmolLM2-135M-Instruct GGUF under
// T2Home(); anything else is a path that must exist (a .gguf file or an HF checkpoint folder).
absl::StatusOr<std::filesystem::path> ResolveModelPath(const std::string& spec);

// The name a model goes by in the registry and in expert files: the file's (or folder's) stem,
// e.g. "SmolLM2-135M-Instruct.Q4_1". The worker registers its base model under it and the
// trainer writes it into the experts it makes, so the two must agree.
std::string ModelName(const std::filesystem::path& model_path);

}  // namespace t2
