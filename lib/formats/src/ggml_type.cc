#include "t2/formats/ggml_type.h"

namespace t2::formats {

std::optional<GgmlTypeTraits> GetGgmlTypeTraits(uint32_t type_id) {
  // Block sizes and byte counts from ggml-common.h (QK_K = 256, K_SCALE_SIZE = 12).
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::kF32:
      return GgmlTypeTraits{"F32", 1, 4};
    case GgmlType::kF16:
      return GgmlTypeTraits{"F16", 1, 2};
    case GgmlType::kBF16:
      return GgmlTypeTraits{"BF16", 1, 2};
    case GgmlType::kQ4_0:
      return GgmlTypeTraits{"Q4_0", 32, 2 + 16};
    case GgmlType::kQ4_1:
      return GgmlTypeTraits{"Q4_1", 32, 2 + 2 + 16};
    case GgmlType::kQ5_0:
      return GgmlTypeTraits{"Q5_0", 32, 2 + 4 + 16};
    case GgmlType::kQ5_1:
      return GgmlTypeTraits{"Q5_1", 32, 2 + 2 + 4 + 16};
    case GgmlType::kQ8_0:
      return GgmlTypeTraits{"Q8_0", 32, 2 + 32};
    case GgmlType::kQ4_K:
      return GgmlTypeTraits{"Q4_K", 256, 2 + 2 + 12 + 128};
    case GgmlType::kQ5_K:
      return GgmlTypeTraits{"Q5_K", 256, 2 + 2 + 12 + 32 + 128};
    case GgmlType::kQ6_K:
      return GgmlTypeTraits{"Q6_K", 256, 128 + 64 + 16 + 2};
  }
  return std::nullopt;
}

}  // namespace t2::formats
