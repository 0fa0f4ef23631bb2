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
namespace {

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

}  // namespace

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

absl::Status WriteFileAtomically(const std::filesystem::path& path, std::span<const std::span<const uint8_t>> pieces) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::string temp = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("creating a temporary file", dir, errno);

  auto fail = [&](absl::Status status) {
    if (fd >= 0) ::close(fd);
    ::unlink(temp.c_str());
    return status;
  };
  // mkostemp creates 0600; these files are as readable as any other the user writes.
  if (::fchmod(fd, 0644) != 0) return fail(ErrnoStatus("fchmod", temp, errno));
  for (std::span<const uint8_t> piece : pieces) {
    absl::Status status = WriteAll(fd, piece, temp);
    if (!status.ok()) return fail(status);
  }
  if (::fsync(fd) != 0) return fail(ErrnoStatus("fsync", temp, errno));
  int closed = ::close(fd);
  fd = -1;
  if (closed != 0) return fail(ErrnoStatus("close", temp, errno));
  if (::rename(temp.c_str(), path.c_str()) != 0) return fail(ErrnoStatus("rename", path, errno));

  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus("opening the folder to sync it", dir, errno);
  int synced = ::fsync(dir_fd);
  int err = errno;
  ::close(dir_fd);
  if (synced != 0) return ErrnoStatus("fsync", dir, err);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents) {
  const std::span<const uint8_t> piece(reinterpret_cast<const uint8_t*>(contents.data()), contents.size());
  return WriteFileAtomically(path, std::span<const std::span<const uint8_t>>(&piece, 1));
}

}  // namespace t2
