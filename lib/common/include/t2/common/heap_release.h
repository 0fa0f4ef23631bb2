// Handing freed heap memory back to the system in a long-running server. glibc's malloc keeps
// what a process frees in its arenas (up to 8 per core, one picked per thread), and only the
// top of each is returned by itself. A worker whose multi-megabyte tensors (composed weights,
// batch activations) come and go on several threads therefore holds hundreds of MB it no
// longer uses, and its RSS steps up and down with no relation to live memory
// (bench/README.md, "Soak"). Releasing it when the worker goes idle keeps RSS honest.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace t2 {

// Returns the free memory of every malloc arena to the system (glibc's malloc_trim). False
// where the C library has no such call, or under a sanitizer, whose allocator replaces malloc.
bool ReleaseFreeHeapMemory();

// What malloc holds now: `in_use_bytes` handed out to the program and not had back (arenas
// and mmapped chunks), `free_bytes` free inside the arenas and still counted in RSS. RSS
// growing while in_use_bytes stays flat is the allocator's, not a leak.
struct HeapUsage {
  uint64_t in_use_bytes = 0;
  uint64_t free_bytes = 0;
};

// glibc's mallinfo2; unset where there is none, or under a sanitizer (its allocator replaces
// malloc, and glibc's arenas would read as empty). Walks every arena under its lock.
std::optional<HeapUsage> ReadHeapUsage();

// Rate-limits ReleaseFreeHeapMemory: a release walks every arena under its lock, so a server
// going idle many times a second does it at most once per `min_interval`.
class HeapReleaser {
 public:
  explicit HeapReleaser(absl::Duration min_interval) : min_interval_(min_interval) {}

  // Releases unless the last release was under min_interval before `now`; returns whether
  // it released. Safe from any thread.
  bool MaybeRelease(absl::Time now = absl::Now());

 private:
  const absl::Duration min_interval_;
  std::mutex mu_;
  absl::Time last_ = absl::InfinitePast();
};

}  // namespace t2
