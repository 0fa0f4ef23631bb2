// The deploy/ folder of the source tree this t2 was built from (`t2 up --prometheus` loads the
// alert rules from it).
#pragma once

#include <filesystem>

namespace t2 {

std::filesystem::path BuiltDeployDir();

}  // namespace t2
