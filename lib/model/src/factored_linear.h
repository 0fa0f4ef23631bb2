// A projection whose rows may use SVF's factored form (see RowAdapters in llama.h).
#pragma once

#include <cstdint>
#include <span>

#include <ATen/Tensor.h>

#include "t2/model/llama.h"

namespace t2::model {

// One HF matrix inside a (possibly fused) weight: rows [offset, offset + size) of it, and
// its factored form when the batch adapts it (nullptr: use the weight rows).
struct FusedPart {
  const FactoredMatrix* factored = nullptr;
  int64_t offset = 0, size = 0;
};

// Which batch rows are adapted, as index tensors on the model's device (computed once per
// forward pass).
struct AdaptedRows {
  bool any = false, all = false;
  at::Tensor adapted, base;  // int64 row indices; undefined when empty
};
AdaptedRows SplitRows(const RowAdapters* adapters, int64_t batch, const at::Device& device);

// y = x Wᵀ + bias for x [B, T, in], W [N, in] covered by `parts` in order, where adapted rows
// take the factored form for parts that have one.
at::Tensor LinearWithAdapters(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                              std::span<const FusedPart> parts, const AdaptedRows& rows);

}  // namespace t2::model
