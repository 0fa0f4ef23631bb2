// GGUF (v2 and v3) reader: metadata, tensor infos and tensor data over a memory mapping.
//
// Open() validates the whole header before returning: every string and array length against
// the end of the file, tensor shapes (element count × type size without overflow, element
// count a multiple of the block size), data offsets aligned, inside the data section and not
// overlapping, no duplicate keys or tensor names. Malformed input yields an
// InvalidArgumentError (or DataLossError for truncation) whose message names the key, tensor
// or offset at fault; nothing aborts or reads outside the mapping.
//
// Thread safety: immutable after Open; all accessors are const and may be called
// concurrently. Tensor data spans point into the mapping owned by the GgufFile.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "t2/formats/ggml_type.h"
#include "t2/formats/mapped_file.h"

namespace t2::formats {

// On-disk metadata value type ids (gguf_type).
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

struct GgufValue;

struct GgufArray {
  GgufValueType element_type = GgufValueType::kUint8;
  std::vector<GgufValue> values;
};

// A metadata value. Integers of every width are held as int64_t or uint64_t (by signedness),
// floats as double; `type` keeps the on-disk type.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;        // GGUF dimension order: ne[0] is the fastest-varying
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;             // relative to the start of the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  std::span<const uint8_t> data;   // n_bytes bytes inside the mapping

  // Row-major (PyTorch / HF) shape: ne reversed. A GGUF matrix with ne = [in, out] is an HF
  // weight of shape [out, in].
  std::vector<int64_t> RowMajorShape() const;
};

class GgufFile {
 public:
  static absl::StatusOr<GgufFile> Open(const std::filesystem::path& path);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const std::filesystem::path& path() const { return file_->path(); }

  bool Has(const std::string& key) const { return metadata_.count(key) != 0; }
  // Typed getters: NotFoundError if the key is absent, InvalidArgumentError naming the key if
  // it holds another type. Integer getters accept any integer type whose value fits.
  absl::StatusOr<std::string> GetString(const std::string& key) const;
  absl::StatusOr<uint64_t> GetUint(const std::string& key) const;
  absl::StatusOr<int64_t> GetInt(const std::string& key) const;
  absl::StatusOr<double> GetFloat(const std::string& key) const;  // any float or integer
  absl::StatusOr<bool> GetBool(const std::string& key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(const std::string& key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(const std::string& key) const;
  absl::StatusOr<std::vector<double>> GetFloatArray(const std::string& key) const;

  // nullptr if there is no tensor of that name.
  const GgufTensorInfo* FindTensor(const std::string& name) const;

 private:
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  std::unique_ptr<MappedFile> file_;  // heap-held so spans stay valid when GgufFile moves
};

}  // namespace t2::formats
