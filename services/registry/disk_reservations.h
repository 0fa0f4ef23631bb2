// The registry's promise to uploads in progress: a publish declares its size in its header,
// and is refused (RESOURCE_EXHAUSTED) up front unless the store's disk keeps a minimum free
// after those bytes and the ones already promised to other uploads. The promise lasts while
// the upload does, so a flood of concurrent uploads cannot together fill the disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"

namespace t2::registry {

class DiskReservations {
 public:
  DiskReservations(std::filesystem::path root, int64_t min_free_bytes)
      : root_(std::move(root)), min_free_bytes_(min_free_bytes) {}

  // Reserves `bytes` if the disk holding `root` has room for them beside the other
  // reservations and the minimum; the reservation ends when the returned object is destroyed,
  // which must happen before this is.
  absl::StatusOr<std::shared_ptr<void>> Reserve(int64_t bytes);

 private:
  const std::filesystem::path root_;
  const int64_t min_free_bytes_;
  std::mutex mu_;
  int64_t reserved_bytes_ = 0;  // guarded by mu_
};

}  // namespace t2::registry
