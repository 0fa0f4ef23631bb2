// Logging for code that also sees LibTorch headers. LibTorch's include folder ships its own
// fmt, which Debian's spdlog does not compile against; these functions keep spdlog (and its
// fmt) inside lib/common, where no torch header is on the include path.
#pragma once

#include <string_view>

namespace t2 {

void LogInfo(std::string_view message);
void LogWarning(std::string_view message);
void LogError(std::string_view message);

}  // namespace t2
