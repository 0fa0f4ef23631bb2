#include "t2/formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "safetensors_json.h"
#include "t2/common/status.h"
#include "t2/formats/dequantize.h"

namespace t2::formats {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader does not byte-swap");

using json = nlohmann::json;

// The Rust `safetensors` crate's limit; a real header is kilobytes to a few megabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";

constexpr SafetensorsDType kAllDTypes[] = {
    SafetensorsDType::kF64, SafetensorsDType::kF32, SafetensorsDType::kF16, SafetensorsDType::kBF16,
    SafetensorsDType::kI64, SafetensorsDType::kI32, SafetensorsDType::kI16, SafetensorsDType::kI8,
    SafetensorsDType::kU8,  SafetensorsDType::kBool};

std::optional<SafetensorsDType> ParseDType(std::string_view name) {
  for (SafetensorsDType dtype : kAllDTypes) {
    if (DTypeName(dtype) == name) return dtype;
  }
  return std::nullopt;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

std::string Quoted(std::string_view name) { return absl::StrCat("'", AsAbsl(name), "'"); }

// A non-negative JSON integer that fits int64_t (the rest of t2 indexes with int64_t).
std::optional<uint64_t> AsIndex(const json& value) {
  if (!value.is_number_unsigned()) return std::nullopt;
  uint64_t v = value.get<uint64_t>();
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return v;
}

struct Entry {
  SafetensorsTensor tensor;
  uint64_t begin = 0;
  uint64_t end = 0;
};

absl::StatusOr<Entry> ParseEntry(const std::string& name, const json& value) {
  auto bad = [&](std::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(name), ": ", AsAbsl(problem)));
  };
  if (!value.is_object()) return bad("entry is not a JSON object");
  // Other keys are ignored, as the Rust `safetensors` crate does.
  auto dtype_it = value.find("dtype");
  auto shape_it = value.find("shape");
  auto offsets_it = value.find("data_offsets");
  if (dtype_it == value.end()) return bad("missing \"dtype\"");
  if (shape_it == value.end()) return bad("missing \"shape\"");
  if (offsets_it == value.end()) return bad("missing \"data_offsets\"");

  Entry entry;
  entry.tensor.name = name;
  if (!dtype_it->is_string()) return bad("\"dtype\" is not a string");
  const auto& dtype_name = dtype_it->get_ref<const std::string&>();
  std::optional<SafetensorsDType> dtype = ParseDType(dtype_name);
  if (!dtype) return bad(absl::StrCat("unknown dtype \"", dtype_name, "\""));
  entry.tensor.dtype = *dtype;

  if (!shape_it->is_array()) return bad("\"shape\" is not an array");
  // Overflow is checked on every partial product, as the reference does, so a huge
  // dimension is rejected even when a later one is zero.
  uint64_t bytes = static_cast<uint64_t>(DTypeSize(*dtype));
  for (const json& dim : *shape_it) {
    std::optional<uint64_t> d = AsIndex(dim);
    if (!d) {
      std::string shown = dim.is_number() ? dim.dump() : std::string(dim.type_name());
      return bad(absl::StrCat("shape entry ", shown, " is not a non-negative integer"));
    }
    entry.tensor.shape.push_back(static_cast<int64_t>(*d));
    if (__builtin_mul_overflow(bytes, *d, &bytes) ||
        bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return bad(absl::StrCat("shape ", ShapeString(entry.tensor.shape), "... of ",
                              AsAbsl(dtype_name), " overflows 64-bit byte counts"));
    }
  }

  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return bad("\"data_offsets\" is not an array of two integers");
  }
  std::optional<uint64_t> begin = AsIndex((*offsets_it)[0]);
  std::optional<uint64_t> end = AsIndex((*offsets_it)[1]);
  if (!begin || !end) return bad("\"data_offsets\" are not non-negative integers");
  if (*end < *begin) {
    return bad(absl::StrCat("data_offsets [", *begin, ",", *end, "] end before they begin"));
  }
  if (*end - *begin != bytes) {
    return bad(absl::StrCat("data_offsets [", *begin, ",", *end, "] hold ", *end - *begin,
                            " bytes but shape ", ShapeString(entry.tensor.shape), " of ",
                            AsAbsl(dtype_name), " needs ", bytes));
  }
  entry.begin = *begin;
  entry.end = *end;
  return entry;
}

absl::StatusOr<std::map<std::string, std::string>> ParseMetadata(const json& value) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;  // the reference reads null as "no metadata"
  if (!value.is_object()) {
    return absl::InvalidArgumentError("\"__metadata__\" is not a JSON object");
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"__metadata__\" value of key ", Quoted(key), " is not a string"));
    }
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

struct ParsedFile {
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsTensor> tensors;
};

// The JSON header text after the 8-byte little-endian length; the data section follows it.
absl::StatusOr<std::string_view> HeaderText(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8) {
    return absl::DataLossError(
        absl::StrCat("file is ", bytes.size(), " bytes, too short for the 8-byte header length"));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes));
  }
  if (header_len > bytes.size() - 8) {
    return absl::DataLossError(absl::StrCat("header length ", header_len,
                                            " runs past the end of the file (", bytes.size(),
                                            " bytes): truncated?"));
  }
  return std::string_view(reinterpret_cast<const char*>(bytes.data()) + 8, header_len);
}

// Sorts `entries` into offset order and checks that they tile the data section exactly: no
// gaps, no overlaps, no trailing bytes (the Rust crate's rule; anything else hides data or
// aliases it).
absl::Status SortAndCheckTiling(std::vector<Entry>* entries, size_t data_size) {
  std::sort(entries->begin(), entries->end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.tensor.name) < std::tie(b.begin, b.end, b.tensor.name);
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    const Entry& e = (*entries)[i];
    if (e.begin < covered) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", Quoted(e.tensor.name), ": data_offsets [", e.begin, ",", e.end,
                       "] overlap tensor ", Quoted((*entries)[i - 1].tensor.name)));
    }
    if (e.begin > covered) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", Quoted(e.tensor.name), ": data_offsets [", e.begin, ",", e.end,
                       "] leave a gap of ", e.begin - covered, " bytes after offset ", covered));
    }
    covered = e.end;
  }
  if (covered != data_size) {
    return absl::InvalidArgumentError(absl::StrCat("tensors cover ", covered, " of the ", data_size,
                                                   " data bytes; the rest is unaccounted for"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ParsedFile> ParseFile(std::span<const uint8_t> bytes) {
  T2_ASSIGN_OR_RETURN(std::string_view header_text, HeaderText(bytes));
  std::span<const uint8_t> data = bytes.subspan(8 + header_text.size());

  T2_ASSIGN_OR_RETURN(json header, internal::ParseStrictJson(header_text, "header"));
  if (!header.is_object()) return absl::InvalidArgumentError("header is not a JSON object");

  ParsedFile parsed;
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      T2_ASSIGN_OR_RETURN(parsed.metadata, ParseMetadata(value));
      continue;
    }
    T2_ASSIGN_OR_RETURN(Entry entry, ParseEntry(key, value));
    if (entry.end > data.size()) {
      return absl::DataLossError(absl::StrCat(
          "tensor ", Quoted(key), ": data_offsets [", entry.begin, ",", entry.end,
          "] run past the end of the ", data.size(), "-byte data section: truncated?"));
    }
    entries.push_back(std::move(entry));
  }
  T2_RETURN_IF_ERROR(SortAndCheckTiling(&entries, data.size()));

  parsed.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    e.tensor.data = data.subspan(e.begin, e.end - e.begin);
    parsed.tensors.push_back(std::move(e.tensor));
  }
  return parsed;
}

// IEEE round-to-nearest-even double -> float, spelled out for values beyond FLT_MAX so the
// result does not rest on an out-of-range conversion.
float DoubleToFloat(double d) {
  if (std::isfinite(d) && std::fabs(d) > static_cast<double>(FLT_MAX)) {
    // Halfway between FLT_MAX and the next (unrepresentable) step 2^128; ties go to the
    // even neighbour, which is infinity since FLT_MAX has an odd significand.
    constexpr double kHalfway = static_cast<double>(FLT_MAX) + 0x1p103;
    float magnitude = std::fabs(d) >= kHalfway ? std::numeric_limits<float>::infinity() : FLT_MAX;
    return std::signbit(d) ? -magnitude : magnitude;
  }
  return static_cast<float>(d);
}

template <typename T>
T LoadLE(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));  // data need not be aligned for T
  return value;
}

}  // namespace

std::string_view DTypeName(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::kF64:
      return "F64";
    case SafetensorsDType::kF32:
      return "F32";
    case SafetensorsDType::kF16:
      return "F16";
    case SafetensorsDType::kBF16:
      return "BF16";
    case SafetensorsDType::kI64:
      return "I64";
    case SafetensorsDType::kI32:
      return "I32";
    case SafetensorsDType::kI16:
      return "I16";
    case SafetensorsDType::kI8:
      return "I8";
    case SafetensorsDType::kU8:
      return "U8";
    case SafetensorsDType::kBool:
      return "BOOL";
  }
  return "?";
}

int64_t DTypeSize(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::kF64:
    case SafetensorsDType::kI64:
      return 8;
    case SafetensorsDType::kF32:
    case SafetensorsDType::kI32:
      return 4;
    case SafetensorsDType::kF16:
    case SafetensorsDType::kBF16:
    case SafetensorsDType::kI16:
      return 2;
    case SafetensorsDType::kI8:
    case SafetensorsDType::kU8:
    case SafetensorsDType::kBool:
      return 1;
  }
  return 0;
}

int64_t SafetensorsTensor::NumElements() const {
  // -1 flags a shape no reader would produce (negative or overflowing), for tensors a
  // caller assembled by hand.
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::filesystem::path& path) {
  T2_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path));
  auto file = std::make_unique<MappedFile>(std::move(mapped));
  absl::StatusOr<ParsedFile> parsed = ParseFile(file->bytes());
  if (!parsed.ok()) return Annotate(parsed.status(), path.string());

  SafetensorsFile result;
  result.metadata_ = std::move(parsed->metadata);
  result.tensors_ = std::move(parsed->tensors);
  for (size_t i = 0; i < result.tensors_.size(); ++i) {
    result.index_.emplace(result.tensors_[i].name, i);
  }
  result.file_ = std::move(file);
  return result;
}

const SafetensorsTensor* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Status ReadAsFloat32(const SafetensorsTensor& tensor, std::span<float> out) {
  int64_t n = tensor.NumElements();
  if (n < 0) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(tensor.name),
                                                   ": invalid shape ", ShapeString(tensor.shape)));
  }
  if (static_cast<uint64_t>(n) != out.size()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(tensor.name), " has ", n,
                                                   " elements but the output holds ", out.size()));
  }
  int64_t size = DTypeSize(tensor.dtype);
  if (size == 0 || tensor.data.size() / static_cast<uint64_t>(size) != out.size() ||
      tensor.data.size() % static_cast<uint64_t>(size) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Quoted(tensor.name), " holds ", tensor.data.size(), " bytes, not ",
                     n, " elements of ", AsAbsl(DTypeName(tensor.dtype))));
  }
  const uint8_t* src = tensor.data.data();
  switch (tensor.dtype) {
    case SafetensorsDType::kF32:
      if (!out.empty()) std::memcpy(out.data(), src, out.size() * sizeof(float));
      return absl::OkStatus();
    case SafetensorsDType::kF16:
      for (size_t i = 0; i < out.size(); ++i) out[i] = HalfToFloat(LoadLE<uint16_t>(src + 2 * i));
      return absl::OkStatus();
    case SafetensorsDType::kBF16:
      for (size_t i = 0; i < out.size(); ++i) {
        out[i] = BFloat16ToFloat(LoadLE<uint16_t>(src + 2 * i));
      }
      return absl::OkStatus();
    case SafetensorsDType::kF64:
      for (size_t i = 0; i < out.size(); ++i) out[i] = DoubleToFloat(LoadLE<double>(src + 8 * i));
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", Quoted(tensor.name), " has dtype ", AsAbsl(DTypeName(tensor.dtype)),
          "; only F32, F16, BF16 and F64 convert to float32"));
  }
}

// ---------------------------------------------------------------------------------------
// Checkpoints.

namespace {

constexpr std::string_view kSingleFile = "model.safetensors";
constexpr std::string_view kIndexFile = "model.safetensors.index.json";

// A shard must be a plain file name inside the checkpoint folder: an index from the
// internet must not make us open /etc/passwd or ../../secrets.
absl::Status ValidateShardName(const std::string& shard) {
  bool plain = !shard.empty() && shard != "." && shard != ".." &&
               shard.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos;
  if (plain) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "shard name ", Quoted(shard), " is not a file name inside the checkpoint folder"));
}

// weight_map: tensor name -> shard file name, validated.
absl::StatusOr<std::map<std::string, std::string>> ReadIndex(const std::filesystem::path& path) {
  T2_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  auto bytes = file.bytes();
  if (bytes.size() > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("index is ", bytes.size(), " bytes, over the limit of ", kMaxHeaderBytes));
  }
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  T2_ASSIGN_OR_RETURN(json index, internal::ParseStrictJson(text, "index"));
  if (!index.is_object()) return absl::InvalidArgumentError("index is not a JSON object");
  auto it = index.find("weight_map");
  if (it == index.end() || !it->is_object()) {
    return absl::InvalidArgumentError("index has no \"weight_map\" object");
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard] : it->items()) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight_map entry for tensor ", Quoted(name), " is not a string"));
    }
    const auto& shard_name = shard.get_ref<const std::string&>();
    absl::Status valid = ValidateShardName(shard_name);
    if (!valid.ok()) return Annotate(valid, absl::StrCat("tensor ", Quoted(name)));
    weight_map.emplace(name, shard_name);
  }
  return weight_map;
}

// Tensor name -> (shard number, tensor), as SafetensorsCheckpoint keeps it.
using TensorIndex = std::map<std::string, std::pair<size_t, const SafetensorsTensor*>>;

// Every tensor of every shard into `index`, each in exactly one shard. Tensors a shard holds
// but the index file does not list are kept: the index is a lookup aid, the shards the data.
absl::Status IndexShards(const std::filesystem::path& dir,
                         const std::vector<std::shared_ptr<SafetensorsFile>>& shards,
                         const std::vector<std::string>& shard_names, TensorIndex& index) {
  for (size_t s = 0; s < shards.size(); ++s) {
    for (const SafetensorsTensor& t : shards[s]->tensors()) {
      auto [it, inserted] = index.emplace(t.name, std::make_pair(s, &t));
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            dir.string(), ": tensor ", Quoted(t.name), " is in both shard ",
            Quoted(shard_names[it->second.first]), " and shard ", Quoted(shard_names[s])));
      }
    }
  }
  return absl::OkStatus();
}

// Each tensor the index file lists is in the shard it names.
absl::Status CheckWeightMap(const std::filesystem::path& index_path,
                            const std::map<std::string, std::string>& weight_map,
                            const std::vector<std::string>& shard_names, const TensorIndex& index) {
  for (const auto& [tensor, shard] : weight_map) {
    auto it = index.find(tensor);
    if (it == index.end() || shard_names[it->second.first] != shard) {
      return absl::InvalidArgumentError(absl::StrCat(index_path.string(), ": maps tensor ",
                                                     Quoted(tensor), " to shard ", Quoted(shard),
                                                     ", which does not contain it"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SafetensorsCheckpoint> SafetensorsCheckpoint::Open(
    const std::filesystem::path& dir) {
  std::error_code ec;
  const std::filesystem::path single = dir / kSingleFile;
  const std::filesystem::path index_path = dir / kIndexFile;
  SafetensorsCheckpoint checkpoint;

  // A lone model.safetensors wins over an index, as in transformers' from_pretrained.
  if (std::filesystem::exists(single, ec)) {
    T2_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(single));
    checkpoint.shards_.push_back(std::make_shared<SafetensorsFile>(std::move(file)));
    for (const SafetensorsTensor& t : checkpoint.shards_[0]->tensors()) {
      checkpoint.index_.emplace(t.name, std::make_pair(size_t{0}, &t));
    }
    return checkpoint;
  }
  if (!std::filesystem::exists(index_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(dir.string(), ": neither ", AsAbsl(kSingleFile), " nor ", AsAbsl(kIndexFile)));
  }

  absl::StatusOr<std::map<std::string, std::string>> weight_map = ReadIndex(index_path);
  if (!weight_map.ok()) return Annotate(weight_map.status(), index_path.string());

  std::map<std::string, size_t> shard_ids;  // file name -> index into shards_
  std::vector<std::string> shard_names;
  for (const auto& [tensor, shard] : *weight_map) {
    if (shard_ids.count(shard) != 0) continue;
    absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(dir / shard);
    if (!file.ok()) {
      return Annotate(file.status(),
                      absl::StrCat("shard ", Quoted(shard), " (holding ", Quoted(tensor), ")"));
    }
    shard_ids.emplace(shard, checkpoint.shards_.size());
    shard_names.push_back(shard);
    checkpoint.shards_.push_back(std::make_shared<SafetensorsFile>(*std::move(file)));
  }

  T2_RETURN_IF_ERROR(IndexShards(dir, checkpoint.shards_, shard_names, checkpoint.index_));
  T2_RETURN_IF_ERROR(CheckWeightMap(index_path, *weight_map, shard_names, checkpoint.index_));
  return checkpoint;
}

const SafetensorsTensor* SafetensorsCheckpoint::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.second;
}

std::vector<std::string> SafetensorsCheckpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, unused] : index_) names.push_back(name);
  return names;
}

}  // namespace t2::formats
