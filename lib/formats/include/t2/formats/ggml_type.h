// GGML tensor element types as numbered in the GGUF format, and their block layout.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace t2::formats {

// Values are the on-disk ids (ggml.h's enum ggml_type). Only the ones t2 can dequantise are
// named; any other id read from a file is rejected with a Status naming the id.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};

struct GgmlTypeTraits {
  std::string_view name;     // "Q4_K"
  int64_t block_elements;    // elements per block (1 for F32/F16/BF16)
  int64_t block_bytes;       // bytes per block
};

// Traits of a known type id, or nullopt for an id t2 does not support.
std::optional<GgmlTypeTraits> GetGgmlTypeTraits(uint32_t type_id);

}  // namespace t2::formats
