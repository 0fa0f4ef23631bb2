#include "blob_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "t2/common/atomic_file.h"
#include "t2/common/sha256.h"
#include "t2/common/status.h"

namespace t2::store {

struct StagedBlob::State {
  int fd = -1;
  std::filesystem::path path;
  Sha256 hash;
  int64_t size = 0;
  int64_t max_bytes = 0;
  bool failed = false;

  ~State() {
    if (fd >= 0) ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
  }
};

struct BlobReader::State {
  int fd = -1;
  std::filesystem::path path;
  std::string sha256;
  int64_t size = 0;
  int64_t offset = 0;
  Sha256 hash;

  ~State() {
    if (fd >= 0) ::close(fd);
  }
};

namespace internal {
namespace {

// Reads exactly `n` bytes at `offset`, or fewer only at end of file.
absl::StatusOr<size_t> PreadFull(int fd, uint8_t* out, size_t n, int64_t offset,
                                 const std::filesystem::path& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read", path, errno);
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

}  // namespace

std::filesystem::path BlobPath(const std::filesystem::path& blobs_dir, const std::string& sha256) {
  return blobs_dir / sha256.substr(0, 2) / sha256;
}

absl::Status DurableRename(const std::filesystem::path& from, const std::filesystem::path& to) {
  const std::filesystem::path dir = to.parent_path();
  bool created = false;
  if (::mkdir(dir.c_str(), 0755) == 0) {
    created = true;
  } else if (errno != EEXIST) {
    return ErrnoStatus("mkdir", dir, errno);
  }
  if (created) T2_RETURN_IF_ERROR(SyncDirectory(dir.parent_path()));
  if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus("rename", to, errno);
  return SyncDirectory(dir);
}

absl::StatusOr<StagedBlob> BlobAccess::Stage(const std::filesystem::path& tmp_dir,
                                             int64_t max_bytes) {
  std::string pattern = (tmp_dir / "upload-XXXXXX").string();
  int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("creating a staging file", tmp_dir, errno);
  StagedBlob blob;
  blob.state_ = std::make_unique<StagedBlob::State>();
  blob.state_->fd = fd;
  blob.state_->path = pattern;
  blob.state_->max_bytes = max_bytes;
  // mkostemp makes 0600; blobs are as readable as the database beside them.
  if (::fchmod(fd, 0644) != 0) return ErrnoStatus("fchmod", pattern, errno);
  return blob;
}

absl::StatusOr<std::string> BlobAccess::Seal(StagedBlob& blob) {
  StagedBlob::State* s = blob.state_.get();
  if (s == nullptr || s->fd < 0 || s->failed) {
    return absl::FailedPreconditionError("the staged blob is not complete (an append failed)");
  }
  if (::fsync(s->fd) != 0) return ErrnoStatus("fsync", s->path, errno);
  int rc = ::close(s->fd);
  s->fd = -1;
  if (rc != 0) return ErrnoStatus("close", s->path, errno);
  return s->hash.HexDigest();
}

void BlobAccess::Release(StagedBlob& blob) {
  if (blob.state_ != nullptr) blob.state_->path.clear();
}

absl::StatusOr<BlobReader> BlobAccess::OpenVerified(const std::filesystem::path& path, int64_t size,
                                                    const std::string& sha256) {
  BlobReader reader;
  reader.state_ = std::make_unique<BlobReader::State>();
  BlobReader::State* s = reader.state_.get();
  s->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (s->fd < 0) {
    if (errno == ENOENT) {
      return absl::DataLossError(absl::StrCat("blob ", sha256, " is missing from disk"));
    }
    return ErrnoStatus("open", path, errno);
  }
  struct stat st;
  if (::fstat(s->fd, &st) != 0) return ErrnoStatus("fstat", path, errno);
  if (st.st_size != size) {
    return absl::DataLossError(
        absl::StrCat("blob ", sha256, " on disk holds ", st.st_size, " bytes, expected ", size));
  }
  Sha256 hash;
  std::vector<uint8_t> buffer(1 << 20);
  int64_t offset = 0;
  while (offset < size) {
    T2_ASSIGN_OR_RETURN(size_t n, PreadFull(s->fd, buffer.data(), buffer.size(), offset, path));
    if (n == 0) break;
    hash.Update(std::span<const uint8_t>(buffer.data(), n));
    offset += static_cast<int64_t>(n);
  }
  const std::string actual = hash.HexDigest();
  if (offset != size || actual != sha256) {
    return absl::DataLossError(
        absl::StrCat("blob ", sha256, " on disk is corrupt (its sha256 is ", actual, ")"));
  }
  s->path = path;
  s->sha256 = sha256;
  s->size = size;
  return reader;
}

}  // namespace internal

StagedBlob::StagedBlob() = default;
StagedBlob::StagedBlob(StagedBlob&& other) noexcept = default;
StagedBlob& StagedBlob::operator=(StagedBlob&& other) noexcept = default;
StagedBlob::~StagedBlob() = default;

absl::Status StagedBlob::Append(std::span<const uint8_t> bytes) {
  if (state_ == nullptr || state_->fd < 0) {
    return absl::FailedPreconditionError("the staged blob is closed");
  }
  if (state_->failed) return absl::FailedPreconditionError("an earlier append failed");
  if (static_cast<int64_t>(bytes.size()) > state_->max_bytes - state_->size) {
    state_->failed = true;
    return absl::InvalidArgumentError(
        absl::StrCat("blob: more than ", state_->max_bytes, " bytes"));
  }
  absl::Status status = WriteAll(state_->fd, bytes, state_->path);
  if (!status.ok()) {
    state_->failed = true;
    return status;
  }
  state_->hash.Update(bytes);
  state_->size += static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

absl::Status StagedBlob::Append(std::string_view bytes) {
  return Append(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

int64_t StagedBlob::size() const { return state_ == nullptr ? 0 : state_->size; }

const std::filesystem::path& StagedBlob::path() const {
  static const std::filesystem::path kNone;
  return state_ == nullptr ? kNone : state_->path;
}

BlobReader::BlobReader() = default;
BlobReader::BlobReader(BlobReader&& other) noexcept = default;
BlobReader& BlobReader::operator=(BlobReader&& other) noexcept = default;
BlobReader::~BlobReader() = default;

int64_t BlobReader::size() const { return state_ == nullptr ? 0 : state_->size; }

absl::StatusOr<std::string> BlobReader::Next(size_t max_bytes) {
  if (state_ == nullptr) return absl::FailedPreconditionError("the blob reader is empty");
  State* s = state_.get();
  if (s->offset >= s->size || max_bytes == 0) return std::string();
  if (s->fd < 0) return absl::FailedPreconditionError("the blob reader is closed");
  const size_t want =
      static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(max_bytes), s->size - s->offset));
  std::string out(want, '\0');
  T2_ASSIGN_OR_RETURN(size_t n, internal::PreadFull(s->fd, reinterpret_cast<uint8_t*>(out.data()),
                                                    want, s->offset, s->path));
  if (n != want) {
    return absl::DataLossError(absl::StrCat("blob ", s->sha256, " shrank while being read"));
  }
  s->hash.Update(out);
  s->offset += static_cast<int64_t>(n);
  if (s->offset == s->size) {
    const std::string actual = s->hash.HexDigest();
    ::close(s->fd);
    s->fd = -1;
    if (actual != s->sha256) {
      return absl::DataLossError(
          absl::StrCat("blob ", s->sha256, " changed on disk while being read"));
    }
  }
  return out;
}

}  // namespace t2::store
