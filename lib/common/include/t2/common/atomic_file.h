// Writing a file so that a crash at any moment leaves either the old file or the complete new
// one: the bytes go to a uniquely named temporary file in the same folder (rename(2) is only
// atomic within a file system), which is synced, renamed over `path`, and the folder synced.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "absl/status/status.h"

namespace t2 {

// The file gets mode 0644. Errors name the path and the step: ResourceExhausted when the disk
// is full (ENOSPC, EDQUOT), PermissionDenied (EACCES, EPERM, EROFS), Internal otherwise.
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::span<const std::span<const uint8_t>> pieces);
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents);

// The Status for a failed system call on `path` (the mapping above).
absl::Status ErrnoStatus(std::string_view what, const std::filesystem::path& path, int err);

}  // namespace t2
