// WriteSafetensors: header serialisation; the bytes go through t2::WriteFileAtomically.

#include <cstring>
#include <exception>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "t2/common/atomic_file.h"
#include "t2/common/status.h"
#include "t2/formats/safetensors.h"

namespace t2::formats {
namespace {

using ordered_json = nlohmann::ordered_json;

absl::StatusOr<ordered_json> TensorEntry(const SafetensorsTensorView& t, uint64_t offset) {
  auto bad = [&](std::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "': ", AsAbsl(problem)));
  };
  int64_t size = DTypeSize(t.dtype);
  if (size == 0) return bad("invalid dtype");
  uint64_t bytes = static_cast<uint64_t>(size);
  ordered_json shape = ordered_json::array();
  for (int64_t d : t.shape) {
    if (d < 0) return bad(absl::StrCat("negative dimension ", d));
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
      return bad("shape overflows 64-bit byte counts");
    }
    shape.push_back(d);
  }
  if (bytes != t.data.size()) {
    return bad(
        absl::StrCat("data holds ", t.data.size(), " bytes but shape and dtype need ", bytes));
  }
  ordered_json entry = ordered_json::object();
  entry["dtype"] = std::string(DTypeName(t.dtype));
  entry["shape"] = std::move(shape);
  entry["data_offsets"] = ordered_json::array({offset, offset + bytes});
  return entry;
}

absl::StatusOr<std::string> SerializeHeader(std::span<const SafetensorsTensorView> tensors,
                                            const std::map<std::string, std::string>& metadata) {
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const SafetensorsTensorView& t : tensors) {
    if (t.name == "__metadata__") {
      return absl::InvalidArgumentError("a tensor may not be named \"__metadata__\"");
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", t.name, "'"));
    }
    T2_ASSIGN_OR_RETURN(ordered_json entry, TensorEntry(t, offset));
    offset += t.data.size();
    header[t.name] = std::move(entry);
  }
  std::string text;
  try {
    // strict: a name that is not valid UTF-8 is an error rather than a mangled header.
    text = header.dump(-1, ' ', /*ensure_ascii=*/false, ordered_json::error_handler_t::strict);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot serialise the header: ", e.what()));
  }
  // Pad with spaces to a multiple of 8 so the data section starts 8-aligned, as the Python
  // and Rust writers do.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

absl::Status WriteSafetensors(const std::filesystem::path& path,
                              std::span<const SafetensorsTensorView> tensors,
                              const std::map<std::string, std::string>& metadata) {
  absl::StatusOr<std::string> header = SerializeHeader(tensors, metadata);
  if (!header.ok()) return Annotate(header.status(), path.string());

  uint8_t length[8];
  uint64_t header_len = header->size();
  std::memcpy(length, &header_len, sizeof(length));  // little-endian host (see safetensors.cc)

  std::vector<std::span<const uint8_t>> pieces;
  pieces.reserve(tensors.size() + 2);
  pieces.emplace_back(length, sizeof(length));
  pieces.emplace_back(reinterpret_cast<const uint8_t*>(header->data()), header->size());
  for (const SafetensorsTensorView& t : tensors) pieces.push_back(t.data);
  return WriteFileAtomically(path, pieces);
}

}  // namespace t2::formats
