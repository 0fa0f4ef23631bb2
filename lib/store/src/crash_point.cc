#include "crash_point.h"

#include "t2/common/crash_point.h"

namespace t2::store::internal {

void CrashPoint(std::string_view step) { ::t2::CrashPoint("T2_STORE_CRASH_AT", step); }

}  // namespace t2::store::internal
