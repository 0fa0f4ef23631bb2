#include "t2/formats/dequantize.h"

#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

// Each routine below follows ggml's reference dequantize_row_* (ggml-quants.c) operation for
// operation, in float32 and in the same order, so the results are bit-identical. The project
// compiles with -std=c++20 (no GNU extensions), which keeps GCC from contracting a*b+c into
// an FMA; an FMA would round once instead of twice and break bit-exactness.

namespace t2::formats {
namespace {

static_assert(std::endian::native == std::endian::little,
              "GGUF data is little-endian; a big-endian host needs byte swaps here");

constexpr int kQK = 32;    // elements per block of the Q4_0..Q8_0 family
constexpr int kQKK = 256;  // elements per super-block of the K family

// Unaligned little-endian loads: block fields sit at arbitrary byte offsets.
inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline float LoadHalf(const uint8_t* p) { return HalfToFloat(LoadU16(p)); }

void DequantF32(const uint8_t* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void DequantF16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = HalfToFloat(LoadU16(src + 2 * i));
}

void DequantBF16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = BFloat16ToFloat(LoadU16(src + 2 * i));
}

// block_q4_0: f16 d; uint8 qs[16]. Low nibbles are elements 0..15, high nibbles 16..31.
void DequantQ4_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 18, dst += kQK) {
    const float d = LoadHalf(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < kQK / 2; ++j) {
      const int x0 = (qs[j] & 0x0F) - 8;
      const int x1 = (qs[j] >> 4) - 8;
      dst[j] = static_cast<float>(x0) * d;
      dst[j + kQK / 2] = static_cast<float>(x1) * d;
    }
  }
}

// block_q4_1: f16 d, f16 m; uint8 qs[16].
void DequantQ4_1(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 20, dst += kQK) {
    const float d = LoadHalf(src);
    const float m = LoadHalf(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < kQK / 2; ++j) {
      const int x0 = qs[j] & 0x0F;
      const int x1 = qs[j] >> 4;
      dst[j] = static_cast<float>(x0) * d + m;
      dst[j + kQK / 2] = static_cast<float>(x1) * d + m;
    }
  }
}

// block_q5_0: f16 d; uint32 qh (bit j is the 5th bit of element j); uint8 qs[16].
void DequantQ5_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 22, dst += kQK) {
    const float d = LoadHalf(src);
    const uint32_t qh = LoadU32(src + 2);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      const int x0 = ((qs[j] & 0x0F) | h0) - 16;
      const int x1 = ((qs[j] >> 4) | h1) - 16;
      dst[j] = static_cast<float>(x0) * d;
      dst[j + kQK / 2] = static_cast<float>(x1) * d;
    }
  }
}

// block_q5_1: f16 d, f16 m; uint32 qh; uint8 qs[16].
void DequantQ5_1(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 24, dst += kQK) {
    const float d = LoadHalf(src);
    const float m = LoadHalf(src + 2);
    const uint32_t qh = LoadU32(src + 4);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      const int x0 = (qs[j] & 0x0F) | h0;
      const int x1 = (qs[j] >> 4) | h1;
      dst[j] = static_cast<float>(x0) * d + m;
      dst[j + kQK / 2] = static_cast<float>(x1) * d + m;
    }
  }
}

// block_q8_0: f16 d; int8 qs[32].
void DequantQ8_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 34, dst += kQK) {
    const float d = LoadHalf(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < kQK; ++j) {
      dst[j] = static_cast<float>(static_cast<int8_t>(qs[j])) * d;
    }
  }
}

// The 12 scale bytes of Q4_K/Q5_K hold eight 6-bit scales and eight 6-bit mins
// (ggml's get_scale_min_k4).
inline void ScaleMinK4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// block_q4_K: f16 d, f16 dmin; uint8 scales[12]; uint8 qs[128]. Each 64 elements use 32 qs
// bytes: low nibbles with sub-block scale 2i, high nibbles with 2i+1.
void DequantQ4_K(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 144) {
    const float d = LoadHalf(src);
    const float dmin = LoadHalf(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* q = src + 16;
    for (int is = 0; is < 8; is += 2, q += 32) {
      int sc, m;
      ScaleMinK4(is, scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      ScaleMinK4(is + 1, scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) dst[l] = d1 * static_cast<float>(q[l] & 0x0F) - m1;
      for (int l = 0; l < 32; ++l) dst[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
      dst += 64;
    }
  }
}

// block_q5_K: f16 d, f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]. Like Q4_K with
// a fifth bit per element from qh: bit 2i for the low-nibble half, 2i+1 for the high.
void DequantQ5_K(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 176) {
    const float d = LoadHalf(src);
    const float dmin = LoadHalf(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qh = src + 16;
    const uint8_t* ql = src + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32) {
      int sc, m;
      ScaleMinK4(is, scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      ScaleMinK4(is + 1, scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int x = (ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0);
        dst[l] = d1 * static_cast<float>(x) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const int x = (ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0);
        dst[32 + l] = d2 * static_cast<float>(x) - m2;
      }
      dst += 64;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

// block_q6_K: uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d. Each 128 elements use 64
// ql bytes, 32 qh bytes and 8 scales.
void DequantQ6_K(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 210) {
    const float d = LoadHalf(src + 208);
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const uint8_t* scb = src + 192;
    for (int n = 0; n < kQKK; n += 128, ql += 64, qh += 32, scb += 8, dst += 128) {
      const int8_t* sc = reinterpret_cast<const int8_t*>(scb);  // same size: no alignment issue
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        // (d * scale) first, then the quant: ggml's evaluation order.
        dst[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        dst[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        dst[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        dst[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

// Dispatches `count` blocks of `type` (already checked against the buffers' sizes) to the
// routine for that type.
void DequantBlocks(GgmlType type, const uint8_t* s, float* d, int64_t count) {
  switch (type) {
    case GgmlType::kF32:
      DequantF32(s, d, count);
      break;
    case GgmlType::kF16:
      DequantF16(s, d, count);
      break;
    case GgmlType::kBF16:
      DequantBF16(s, d, count);
      break;
    case GgmlType::kQ4_0:
      DequantQ4_0(s, d, count);
      break;
    case GgmlType::kQ4_1:
      DequantQ4_1(s, d, count);
      break;
    case GgmlType::kQ5_0:
      DequantQ5_0(s, d, count);
      break;
    case GgmlType::kQ5_1:
      DequantQ5_1(s, d, count);
      break;
    case GgmlType::kQ8_0:
      DequantQ8_0(s, d, count);
      break;
    case GgmlType::kQ4_K:
      DequantQ4_K(s, d, count);
      break;
    case GgmlType::kQ5_K:
      DequantQ5_K(s, d, count);
      break;
    case GgmlType::kQ6_K:
      DequantQ6_K(s, d, count);
      break;
  }
}

}  // namespace

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float32.
    float f = static_cast<float>(mant) * 0x1p-24f;
    std::memcpy(&bits, &f, sizeof(bits));
    bits |= sign;
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf, or NaN keeping its payload
  } else {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

float BFloat16ToFloat(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToHalf(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  u &= 0x7FFFFFFFu;
  if (u > 0x7F800000u) {  // NaN: keep it a (quiet) NaN
    return static_cast<uint16_t>(sign | 0x7E00u | ((u >> 13) & 0x3FFu));
  }
  if (u >= 0x477FF000u) {  // >= 65520 rounds (ties to even) past 65504: infinity
    return static_cast<uint16_t>(sign | 0x7C00u);
  }
  if (u < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // Adding 0.5 puts the value where a float's ulp is 2^-24 (a half subnormal's step), so
    // the float addition itself rounds to nearest even; the result may carry into the
    // smallest normal, which is still the right encoding.
    const float v = std::bit_cast<float>(u) + 0.5f;
    return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(v) - 0x3F000000u));
  }
  const uint32_t odd = (u >> 13) & 1u;
  u += (static_cast<uint32_t>(15 - 127) << 23) + 0xFFFu + odd;
  return static_cast<uint16_t>(sign | (u >> 13));
}

uint16_t FloatToBFloat16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
    return static_cast<uint16_t>((u >> 16) | 0x40u);  // force quiet so it cannot become inf
  }
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

absl::Status Dequantize(GgmlType type, std::span<const uint8_t> src, std::span<float> dst) {
  const auto traits = GetGgmlTypeTraits(static_cast<uint32_t>(type));
  if (!traits) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot dequantize unknown ggml type id ", static_cast<uint32_t>(type)));
  }
  const uint64_t n = dst.size();
  const uint64_t block = static_cast<uint64_t>(traits->block_elements);
  if (n % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat("dequantize ", AsAbsl(traits->name), ": ", n,
                                                   " elements is not a multiple of the block size ",
                                                   block));
  }
  const uint64_t nb = n / block;
  // nb * block_bytes cannot overflow: dst holds nb * block floats of >= 4 bytes each, which
  // exceeds nb * block_bytes for every type, and dst fits in memory.
  const uint64_t need = nb * static_cast<uint64_t>(traits->block_bytes);
  if (src.size() != need) {
    return absl::InvalidArgumentError(absl::StrCat("dequantize ", AsAbsl(traits->name), ": ", n,
                                                   " elements need ", need, " bytes, got ",
                                                   src.size()));
  }
  if (n == 0) return absl::OkStatus();
  DequantBlocks(type, src.data(), dst.data(), static_cast<int64_t>(nb));
  return absl::OkStatus();
}

}  // namespace t2::formats
