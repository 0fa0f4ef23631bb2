// Read-only memory mapping of a whole file (RAII).
//
// Thread safety: immutable after Open; bytes() may be read from any thread.
// Ownership: the mapping lives as long as the MappedFile; spans into it must not outlive it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

#include "absl/status/statusor.h"

namespace t2::formats {

class MappedFile {
 public:
  // Maps `path` read-only. An empty file maps to an empty span (no mmap call).
  static absl::StatusOr<MappedFile> Open(const std::filesystem::path& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

}  // namespace t2::formats
