#include "disk_reservations.h"

#include <algorithm>
#include <climits>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"

namespace t2::registry {

absl::StatusOr<std::shared_ptr<void>> DiskReservations::Reserve(int64_t bytes) {
  std::error_code ec;
  const std::filesystem::space_info space = std::filesystem::space(root_, ec);
  if (ec) {
    LogError(absl::StrCat("registry: free disk space unknown: ", ec.message()));
    return absl::InternalError("publish: the registry cannot check its free disk space");
  }
  std::lock_guard lock(mu_);
  const int64_t available = static_cast<int64_t>(std::min<uintmax_t>(space.available, INT64_MAX));
  const int64_t left = available - reserved_bytes_ - bytes;
  if (left < min_free_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "publish: the registry's disk has no room for ", bytes, " more bytes (", available,
        " free, ", reserved_bytes_, " promised to uploads in progress, ", min_free_bytes_,
        " kept free)"));
  }
  reserved_bytes_ += bytes;
  return std::shared_ptr<void>(nullptr, [this, bytes](void*) {
    std::lock_guard lock(mu_);
    reserved_bytes_ -= bytes;
  });
}

}  // namespace t2::registry
