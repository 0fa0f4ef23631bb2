#include "factored_linear.h"

#include <ATen/ATen.h>

#include <vector>

#include "t2/model/cpu_linear.h"

namespace t2::model {

AdaptedRows SplitRows(const RowAdapters* adapters, int64_t batch, const at::Device& device) {
  AdaptedRows rows;
  if (adapters == nullptr || adapters->matrices.empty()) return rows;
  std::vector<int64_t> adapted, base;
  for (int64_t b = 0; b < batch; ++b) (adapters->adapted[b] ? adapted : base).push_back(b);
  rows.any = !adapted.empty();
  rows.all = base.empty();
  if (!adapted.empty()) rows.adapted = at::tensor(adapted, at::kLong).to(device);
  if (!base.empty()) rows.base = at::tensor(base, at::kLong).to(device);
  return rows;
}

namespace {

// The adapted rows' outputs: every part either factored or from the weight rows.
at::Tensor AdaptedOutput(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                         std::span<const FusedPart> parts, const at::Tensor& row_index) {
  std::vector<at::Tensor> outputs;
  outputs.reserve(parts.size());
  at::Tensor x32;
  for (const auto& part : parts) {
    at::Tensor b = bias.defined() ? bias.narrow(0, part.offset, part.size) : at::Tensor();
    if (part.factored == nullptr) {
      outputs.push_back(Linear(x, w.narrow(0, part.offset, part.size), b));
      continue;
    }
    // The factors are float32 whatever the model's dtype: the product is formed in float32
    // and rounded once, like a merged W' would be.
    if (!x32.defined()) x32 = x.to(at::kFloat);
    const FactoredMatrix& f = *part.factored;
    at::Tensor scale = row_index.defined() ? f.scale.index_select(0, row_index) : f.scale;  // [Ba, r]
    at::Tensor t = Linear(x32, f.vt) * scale.unsqueeze(1);                                   // [Ba, T, r]
    at::Tensor y = Linear(t, f.u).to(x.scalar_type());                                      // [Ba, T, n]
    outputs.push_back(b.defined() ? y + b : y);
  }
  return outputs.size() == 1 ? outputs[0] : at::cat(outputs, -1);
}

}  // namespace

at::Tensor LinearWithAdapters(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                              std::span<const FusedPart> parts, const AdaptedRows& rows) {
  bool factored = false;
  for (const auto& part : parts) factored = factored || part.factored != nullptr;
  if (!factored || !rows.any) return Linear(x, w, bias);
  if (rows.all) return AdaptedOutput(x, w, bias, parts, at::Tensor());
  auto out = at::empty({x.size(0), x.size(1), w.size(0)}, x.options());
  out.index_copy_(0, rows.base, Linear(x.index_select(0, rows.base), w, bias));
  out.index_copy_(0, rows.adapted,
                  AdaptedOutput(x.index_select(0, rows.adapted), w, bias, parts, rows.adapted));
  return out;
}

}  // namespace t2::model
