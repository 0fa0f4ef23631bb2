#include "t2/metrics/process_collector.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>

#include "t2/metrics/snapshot.h"

namespace t2::metrics {
namespace {

std::optional<uint64_t> ResidentBytes() {
  // statm: size resident shared text lib data dt, in pages.
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0;
  uint64_t resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return std::nullopt;
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::optional<uint64_t> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  uint64_t n = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // not the descriptor opendir itself holds
}

}  // namespace

ProcessMemory ReadProcessMemory() {
  ProcessMemory m;
  m.resident_bytes = ResidentBytes();
  m.open_fds = OpenFds();
  m.heap = ReadHeapUsage();  // microseconds, once per scrape
  return m;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  const ProcessMemory m = ReadProcessMemory();
  std::vector<prometheus::MetricFamily> out;
  if (m.resident_bytes) {
    SnapshotFamily(out, "process_resident_memory_bytes", "Resident memory size in bytes",
                   MetricType::Gauge)
        .Add(static_cast<double>(*m.resident_bytes));
  }
  if (m.open_fds) {
    SnapshotFamily(out, "process_open_fds", "Number of open file descriptors", MetricType::Gauge)
        .Add(static_cast<double>(*m.open_fds));
  }
  if (m.heap) {
    SnapshotFamily(out, "t2_heap_in_use_bytes",
                   "Bytes malloc has handed out and not had back (arenas and mmapped chunks)",
                   MetricType::Gauge)
        .Add(static_cast<double>(m.heap->in_use_bytes));
    SnapshotFamily(out, "t2_heap_free_bytes",
                   "Bytes free inside malloc's arenas, not yet returned to the system",
                   MetricType::Gauge)
        .Add(static_cast<double>(m.heap->free_bytes));
  }
  return out;
}

}  // namespace t2::metrics
