#include "crash_point.h"

#include <signal.h>

#include <cstdlib>

namespace t2::store::internal {

void CrashPoint(std::string_view step) {
  // Read each time rather than cached: tests set it in a forked child.
  const char* at = std::getenv("T2_STORE_CRASH_AT");
  if (at != nullptr && step == at) ::raise(SIGKILL);
}

}  // namespace t2::store::internal
