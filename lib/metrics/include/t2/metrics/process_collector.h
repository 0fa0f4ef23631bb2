// The process's own memory and file descriptors, read at each scrape: what a dashboard shows
// per service and what the soak run (bench/run_soak.sh) tells a leak from a cache with.
//   process_resident_memory_bytes  RSS (/proc/self/statm), Prometheus's usual name
//   process_open_fds               entries of /proc/self/fd
//   t2_heap_in_use_bytes           bytes malloc has handed out and not had back
//   t2_heap_free_bytes             bytes free inside malloc's arenas, still counted in RSS
//                                  (t2/common/heap_release.h; not under a sanitizer)
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "t2/common/heap_release.h"

namespace t2::metrics {

struct ProcessMemory {
  std::optional<uint64_t> resident_bytes;  // unset where /proc cannot be read
  std::optional<uint64_t> open_fds;
  std::optional<HeapUsage> heap;
};

// Reads the figures above for the calling process now.
ProcessMemory ReadProcessMemory();

class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace t2::metrics
