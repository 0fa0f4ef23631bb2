#include "t2/common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2 {

absl::Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::filesystem::path& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path, errno);
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::filesystem::path& dir) {
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus("opening the folder to sync it", dir, errno);
  int synced = ::fsync(dir_fd);
  int err = errno;
  ::close(dir_fd);
  if (synced != 0) return ErrnoStatus("fsync", dir, err);
  return absl::OkStatus();
}

absl::Status ErrnoStatus(std::string_view what, const std::filesystem::path& path, int err) {
  std::string message = absl::StrCat(path.string(), ": ", AsAbsl(what), ": ", std::strerror(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Create(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  // Unique, in the same folder: rename(2) is atomic only within one file system, and several
  // writers may target one folder (or one path) at once.
  std::string temp = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("creating a temporary file", dir, errno);
  AtomicFileWriter writer(path, std::move(temp), fd);
  // mkostemp creates 0600; these files are as readable as any other the user writes.
  if (::fchmod(fd, 0644) != 0) return ErrnoStatus("fchmod", writer.temp_, errno);
  return writer;
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temp_(std::exchange(other.temp_, std::string())),
      fd_(std::exchange(other.fd_, -1)),
      written_(other.written_) {}

AtomicFileWriter::~AtomicFileWriter() { Abandon(); }

void AtomicFileWriter::Abandon() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
}

absl::Status AtomicFileWriter::Append(std::string_view bytes) {
  if (fd_ < 0)
    return absl::FailedPreconditionError(absl::StrCat(path_.string(), ": writer already finished"));
  absl::Status status = WriteAll(
      fd_, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
      temp_);
  if (status.ok()) written_ += static_cast<int64_t>(bytes.size());
  return status;
}

absl::Status AtomicFileWriter::Commit() {
  if (fd_ < 0)
    return absl::FailedPreconditionError(absl::StrCat(path_.string(), ": writer already finished"));
  absl::Status status;
  if (::fsync(fd_) != 0) status = ErrnoStatus("fsync", temp_, errno);
  const int closed = ::close(fd_);
  fd_ = -1;
  if (status.ok() && closed != 0) status = ErrnoStatus("close", temp_, errno);
  if (status.ok() && ::rename(temp_.c_str(), path_.c_str()) != 0)
    status = ErrnoStatus("rename", path_, errno);
  if (!status.ok()) {
    Abandon();
    return status;
  }
  temp_.clear();  // it is `path_` now
  const std::filesystem::path dir = path_.parent_path();
  return SyncDirectory(dir.empty() ? std::filesystem::path(".") : dir);
}

absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 std::span<const std::span<const uint8_t>> pieces) {
  T2_ASSIGN_OR_RETURN(AtomicFileWriter writer, AtomicFileWriter::Create(path));
  for (std::span<const uint8_t> piece : pieces) {
    T2_RETURN_IF_ERROR(
        writer.Append(std::string_view(reinterpret_cast<const char*>(piece.data()), piece.size())));
  }
  return writer.Commit();
}

absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents) {
  const std::span<const uint8_t> piece(reinterpret_cast<const uint8_t*>(contents.data()),
                                       contents.size());
  return WriteFileAtomically(path, std::span<const std::span<const uint8_t>>(&piece, 1));
}

}  // namespace t2
