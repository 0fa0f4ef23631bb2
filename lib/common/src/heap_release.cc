#include "t2/common/heap_release.h"

#include "t2/common/sanitizer.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace t2 {

bool ReleaseFreeHeapMemory() {
#if defined(T2_SANITIZER_OWNS_MALLOC)
  return false;  // the sanitizer's allocator owns the heap; glibc's arenas are unused
#elif defined(__GLIBC__)
  malloc_trim(0);
  return true;
#else
  return false;
#endif
}

std::optional<HeapUsage> ReadHeapUsage() {
#if defined(T2_SANITIZER_OWNS_MALLOC)
  return std::nullopt;
#elif defined(__GLIBC__)
  const struct mallinfo2 info = mallinfo2();
  return HeapUsage{.in_use_bytes = info.uordblks + info.hblkhd, .free_bytes = info.fordblks};
#else
  return std::nullopt;
#endif
}

bool HeapReleaser::MaybeRelease(absl::Time now) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (now - last_ < min_interval_) return false;
    last_ = now;
  }
  return ReleaseFreeHeapMemory();
}

}  // namespace t2
