#include "t2/model/cpu_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <immintrin.h>

#include <algorithm>

namespace t2::model {
namespace {

constexpr int64_t kRowBlock = 8;  // rows of x sharing one pass over a weight row

// Dot products of one weight row with kRows rows of x (row stride k), AVX-512 with fused
// multiply-add, 16 lanes at a time, a masked tail. Compiled for AVX-512 only in this
// function; callers check the CPU first.
// UBSan's pointer-overflow check is left out here: clang's (scripts/asan_build.sh) costs a
// branch and a spill per load and made a sanitized `t2 generate` of 32 tokens take 6.2 s
// instead of 4.4 s; ASan still checks every load.
template <int kRows>
__attribute__((target("avx512f"), no_sanitize("pointer-overflow"))) void DotRowsAvx512(
    const float* __restrict w, const float* __restrict x, int64_t k, float* __restrict out,
    int64_t out_stride) {
  __m512 acc[kRows];
  // Fully unrolled so the accumulators stay in registers (GCC -O2 would not unroll these).
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 wv = _mm512_loadu_ps(w + i);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r)
      acc[r] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + r * k + i), acc[r]);
  }
  if (i < k) {
    __mmask16 mask = static_cast<__mmask16>((1u << (k - i)) - 1);
    __m512 wv = _mm512_maskz_loadu_ps(mask, w + i);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r)
      acc[r] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x + r * k + i), acc[r]);
  }
  // GCC 12's _mm512_reduce_add_ps starts from an undefined vector, which its own
  // -W(maybe-)uninitialized flags once inlined (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // clang has no such group, and says so
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) out[r * out_stride] = _mm512_reduce_add_ps(acc[r]);
#pragma GCC diagnostic pop
}

using DotFn = void (*)(const float*, const float*, int64_t, float*, int64_t);
constexpr DotFn kDot[kRowBlock + 1] = {nullptr,          DotRowsAvx512<1>, DotRowsAvx512<2>,
                                       DotRowsAvx512<3>, DotRowsAvx512<4>, DotRowsAvx512<5>,
                                       DotRowsAvx512<6>, DotRowsAvx512<7>, DotRowsAvx512<8>};

bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

// MKL picks its kernels by CPU vendor: on Intel it runs AVX-512 code and beats this kernel at
// nearly every shape bench/linear_bench measures (Sapphire Rapids, 2026-12-03: the kernel at
// 0.22-0.98x of MKL for 1-8 rows, but for o at 4 rows and gate_up at 8); elsewhere it runs
// generic code and this kernel wins (AMD Zen 4, 2026-11-25: 1.06-3.98x, but for down at 8 rows).
// Decided once per process, so a machine always sums in the same order.
bool PreferKernel() {
  static const bool prefer = HasAvx512() && !__builtin_cpu_is("intel");
  return prefer;
}

}  // namespace

bool CpuHasSmallLinearKernel() { return HasAvx512(); }
bool CpuPrefersSmallLinearKernel() { return PreferKernel(); }

at::Tensor SmallBatchLinear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  at::Tensor y = at::empty({m, n}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // Split the output features across threads: each thread streams its own weight rows.
  at::parallel_for(0, n, /*grain_size=*/256, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t r0 = 0; r0 < m; r0 += kRowBlock) {
        int64_t rows = std::min(kRowBlock, m - r0);
        kDot[rows](wp + row * k, xp + r0 * k, k, yp + r0 * n + row, n);
      }
    }
  });
  if (bias.defined()) y.add_(bias);
  return y;
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const int64_t k = x.size(-1);
  const int64_t rows = k == 0 ? 0 : x.numel() / k;
  bool eligible =
      PreferKernel() && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
      w.scalar_type() == at::kFloat && w.dim() == 2 && w.is_contiguous() && w.size(1) == k &&
      rows > 0 && rows <= kSmallLinearMaxRows && (!bias.defined() || bias.is_contiguous()) &&
      // The kernel has no backward: a training forward takes at::linear.
      !(at::GradMode::is_enabled() &&
        (x.requires_grad() || w.requires_grad() || (bias.defined() && bias.requires_grad())));
  if (!eligible) return bias.defined() ? at::linear(x, w, bias) : at::linear(x, w);
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(0);
  return SmallBatchLinear(x.reshape({rows, k}).contiguous(), w, bias).view(sizes);
}

}  // namespace t2::model
