// Expert blobs in and out of the store, streamed: neither side holds a whole blob in memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace t2::store {

namespace internal {
struct BlobAccess;
}

// A blob being received (ExpertStore::StageBlob): bytes go to a private file in the store's
// tmp/ folder, on the same filesystem as the blobs, and are hashed as they arrive.
// ExpertStore::Publish consumes it; otherwise the destructor removes the file.
// Not thread-safe; movable.
class StagedBlob {
 public:
  StagedBlob();
  StagedBlob(StagedBlob&& other) noexcept;
  StagedBlob& operator=(StagedBlob&& other) noexcept;
  StagedBlob(const StagedBlob&) = delete;
  StagedBlob& operator=(const StagedBlob&) = delete;
  ~StagedBlob();

  // InvalidArgument once the total would pass the store's blob size limit; Internal on a
  // write error. After an error the blob cannot be published.
  absl::Status Append(std::span<const uint8_t> bytes);
  absl::Status Append(std::string_view bytes);
  int64_t size() const;
  const std::filesystem::path& path() const;

 private:
  friend struct internal::BlobAccess;
  struct State;
  std::unique_ptr<State> state_;
};

// Reads a stored blob (ExpertStore::OpenBlob) whose sha256 was checked when it was opened.
// It hashes again as it reads and holds back the last piece until that hash matches, so a
// blob changed on disk while it is being read ends in DataLoss, never in a complete stream.
// Not thread-safe; movable.
class BlobReader {
 public:
  BlobReader();
  BlobReader(BlobReader&& other) noexcept;
  BlobReader& operator=(BlobReader&& other) noexcept;
  BlobReader(const BlobReader&) = delete;
  BlobReader& operator=(const BlobReader&) = delete;
  ~BlobReader();

  // The next at most `max_bytes` bytes (> 0); an empty string after the last piece.
  absl::StatusOr<std::string> Next(size_t max_bytes);
  int64_t size() const;

 private:
  friend struct internal::BlobAccess;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace t2::store
