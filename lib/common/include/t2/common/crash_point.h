// Deterministic crash injection for durability tests: when the environment variable
// `variable` names `step`, the process kills itself with SIGKILL there, as kill -9 or a power
// cut would (no destructors run, no buffered writes are flushed). The variable is read on
// every call, so a test can set it in a child process only.
#pragma once

#include <string_view>

namespace t2 {

void CrashPoint(const char* variable, std::string_view step);

}  // namespace t2
