// y = x Wᵀ + b for the decode step's few rows on CPU.
//
// MKL, which LibTorch's CPU linear calls, takes a generic code path on AMD CPUs, where its
// GEMV for a wide output head reaches a quarter of memory bandwidth. Decode with a handful of
// rows is bandwidth-bound: this kernel streams each weight row once and computes every row's
// dot product from it. Used on AVX-512 CPUs that are not Intel's (on Intel MKL's own AVX-512
// code is faster); at::linear everywhere else. Up to kSmallLinearMaxRows rows, each output
// element is summed in the same order whatever the number of rows.
#pragma once

#include <ATen/Tensor.h>

namespace t2::model {

// Most rows the kernel takes; larger inputs (prefill) go to at::linear, which is
// compute-bound there. Chosen by bench/linear_bench (see bench/README.md).
inline constexpr int64_t kSmallLinearMaxRows = 8;

// x: [..., K] float32; w: [N, K] float32 contiguous; bias: [N] or undefined. Falls back to
// at::linear for other devices, dtypes, layouts or more than kSmallLinearMaxRows rows.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias = {});

// The kernel alone, for tests and benchmarks: x [M, K] contiguous float32 CPU; needs AVX-512
// (check CpuHasSmallLinearKernel() first).
bool CpuHasSmallLinearKernel();
// Whether Linear uses the kernel here: AVX-512 and a CPU that is not Intel's.
bool CpuPrefersSmallLinearKernel();
at::Tensor SmallBatchLinear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias);

}  // namespace t2::model
