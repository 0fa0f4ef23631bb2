// Dequantisation of GGML blocks to float32, bit-exact with ggml's reference (CPU) routines.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "t2/formats/ggml_type.h"

namespace t2::formats {

// Decodes `dst.size()` elements of `type` from `src`. InvalidArgumentError if dst.size() is
// not a multiple of the type's block size or src.size() is not exactly the bytes they need.
absl::Status Dequantize(GgmlType type, std::span<const uint8_t> src, std::span<float> dst);

// IEEE half and bfloat16 to float (exact).
float HalfToFloat(uint16_t h);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToHalf(float f);       // round to nearest even
uint16_t FloatToBFloat16(float f);   // round to nearest even (NaN stays NaN)

}  // namespace t2::formats
