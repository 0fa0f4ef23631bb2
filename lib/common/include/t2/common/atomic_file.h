// Writing a file so that a crash at any moment leaves either the old file or the complete new
// one: the bytes go to a uniquely named temporary file in the same folder (rename(2) is only
// atomic within a file system), which is synced, renamed over `path`, and the folder synced.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace t2 {

// The file gets mode 0644. Errors name the path and the step: ResourceExhausted when the disk
// is full (ENOSPC, EDQUOT), PermissionDenied (EACCES, EPERM, EROFS), Internal otherwise.
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::span<const std::span<const uint8_t>> pieces);
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents);

// The same for bytes that arrive in pieces (a download): Append as they come, then Commit.
// Until Commit succeeds `path` is untouched; a writer destroyed without it removes its
// temporary file. Not thread-safe.
class AtomicFileWriter {
 public:
  static absl::StatusOr<AtomicFileWriter> Create(const std::filesystem::path& path);
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  ~AtomicFileWriter();

  absl::Status Append(std::string_view bytes);
  int64_t bytes_written() const { return written_; }
  // Syncs the file, renames it over `path` and syncs the folder.
  absl::Status Commit();

 private:
  AtomicFileWriter(std::filesystem::path path, std::string temp, int fd)
      : path_(std::move(path)), temp_(std::move(temp)), fd_(fd) {}
  void Abandon();

  std::filesystem::path path_;
  std::string temp_;  // empty once committed or moved from
  int fd_ = -1;
  int64_t written_ = 0;
};

// Writes all of `bytes` to `fd` (retrying short writes and EINTR); errors name `path`.
absl::Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::filesystem::path& path);
// fsync(2) of a folder, so that a rename or a new entry in it survives a crash.
absl::Status SyncDirectory(const std::filesystem::path& dir);

// The Status for a failed system call on `path` (the mapping above).
absl::Status ErrnoStatus(std::string_view what, const std::filesystem::path& path, int err);

}  // namespace t2
