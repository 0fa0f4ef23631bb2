// File-level pieces of the blob folder: staging, content addresses, hashing, fsync.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/store/blob.h"

namespace t2::store::internal {

struct BlobAccess {
  // A new staged blob in `tmp_dir` that refuses to grow past `max_bytes`.
  static absl::StatusOr<StagedBlob> Stage(const std::filesystem::path& tmp_dir, int64_t max_bytes);
  // fsyncs and closes the staged file; returns its sha256 (hex). The file stays.
  static absl::StatusOr<std::string> Seal(StagedBlob& blob);
  // Forgets the staged file without removing it (it was renamed away).
  static void Release(StagedBlob& blob);
  // Opens `path`, checks its size and sha256 against the expected ones (DataLoss naming
  // what differs), and returns a reader positioned at the start.
  static absl::StatusOr<BlobReader> OpenVerified(const std::filesystem::path& path, int64_t size,
                                                 const std::string& sha256);
};

// <blobs>/<sha[0:2]>/<sha>.
std::filesystem::path BlobPath(const std::filesystem::path& blobs_dir, const std::string& sha256);

// rename(2) `from` onto `to` (same filesystem), creating `to`'s folder if needed, then fsyncs
// that folder (and the blobs folder, if the shard folder was new) so the rename survives a
// power cut.
absl::Status DurableRename(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace t2::store::internal
