#include "t2/common/crash_point.h"

#include <signal.h>

#include <cstdlib>

namespace t2 {

void CrashPoint(const char* variable, std::string_view step) {
  const char* at = std::getenv(variable);
  if (at != nullptr && step == at) ::raise(SIGKILL);
}

}  // namespace t2
