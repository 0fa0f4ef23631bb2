// Test-side names for the child-process helpers (t2/common/process.h) and a temp-dir helper.
#pragma once

#include <filesystem>
#include <string>

#include "t2/common/process.h"

namespace t2::testing {

using ::t2::ChildProcess;
using ::t2::Tail;
using ::t2::WaitForFile;

// A fresh empty directory under the system temp dir.
std::filesystem::path MakeTempDir(const std::string& prefix);

}  // namespace t2::testing
