// safetensors reader and writer, and HF sharded checkpoints (model.safetensors.index.json).
//
// Open() validates the header: the 8-byte length against the file size, the JSON, every
// dtype, shape × dtype size without overflow, data_offsets inside the data section, in
// order, non-overlapping and covering it, no duplicate names. Errors name the tensor and
// the problem; nothing aborts or reads out of bounds.
//
// Thread safety: readers are immutable after Open. Spans point into the owned mapping.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/formats/mapped_file.h"

namespace t2::formats {

enum class SafetensorsDType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

std::string_view DTypeName(SafetensorsDType dtype);   // "F32"
int64_t DTypeSize(SafetensorsDType dtype);            // bytes per element

struct SafetensorsTensor {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> data;

  // Product of `shape` (1 for a scalar); -1 if a dimension is negative or the product
  // overflows, which a tensor from Open never has.
  int64_t NumElements() const;
};

class SafetensorsFile {
 public:
  static absl::StatusOr<SafetensorsFile> Open(const std::filesystem::path& path);

  // The "__metadata__" string map (empty if absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // In data-offset order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* Find(const std::string& name) const;
  const std::filesystem::path& path() const { return file_->path(); }

 private:
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::unique_ptr<MappedFile> file_;
};

// Converts F32/F16/BF16/F64 elements to float32; InvalidArgumentError naming the tensor for
// other dtypes or a size mismatch with `out`.
absl::Status ReadAsFloat32(const SafetensorsTensor& tensor, std::span<float> out);

// A checkpoint folder: either model.safetensors or model.safetensors.index.json with shards.
// Every tensor the index names must exist in its shard; a tensor in two shards is an error.
class SafetensorsCheckpoint {
 public:
  static absl::StatusOr<SafetensorsCheckpoint> Open(const std::filesystem::path& dir);

  const SafetensorsTensor* Find(const std::string& name) const;
  std::vector<std::string> TensorNames() const;  // sorted

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, std::pair<size_t, const SafetensorsTensor*>> index_;
};

// A tensor to write: `data` holds the raw little-endian bytes (NumElements × DTypeSize).
struct SafetensorsTensorView {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> data;
};

// Writes a safetensors file atomically: a temporary file beside `path`, fsync, rename, fsync
// of the directory. A crash leaves either the old file or the new one, never a partial one.
absl::Status WriteSafetensors(const std::filesystem::path& path,
                              std::span<const SafetensorsTensorView> tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace t2::formats
