// Σ′ rebuild in merged form: W' composed from the SVD factors and written over the weights.
#include "t2/svf/compose.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "t2/model/torch_error.h"

namespace t2::svf {
namespace {

// Cheap checks that keep Apply from failing half-way through the weights: every vector
// names a decomposed matrix and has its rank.
absl::Status CheckShapes(const Expert& expert, const Decomposition& decomposition) {
  for (const auto& [name, z] : expert.z) {
    const SvdFactors* f = decomposition.Find(name);
    if (f == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert tensor '", name, "': not a matrix of the decomposition"));
    }
    if (!z.defined() || z.dim() != 1 || z.size(0) != f->rank()) {
      return absl::InvalidArgumentError(absl::StrCat("expert tensor '", name, "': length ",
                                                     z.defined() ? z.numel() : 0, ", expected ",
                                                     f->rank()));
    }
  }
  return absl::OkStatus();
}

// W' written straight into `out` when it is float32 and contiguous (saves a full copy of
// the matrix, which is most of the rebuild's memory traffic), else composed and converted.
void ComposeInto(const SvdFactors& f, const at::Tensor& z, Normalization normalization,
                 const at::Tensor& out) {
  if (out.scalar_type() == at::kFloat && out.is_contiguous() && out.device() == f.u.device()) {
    const at::Tensor scale = f.s * z.to(f.s.device(), at::kFloat) *
                             NormalizationScale(f.s, z, normalization);
    at::Tensor target = out;  // mm_out takes a mutable reference; it is the same storage
    at::mm_out(target, f.u * scale, f.v.t());
  } else {
    out.copy_(ComposeWeight(f, z, normalization));
  }
}

}  // namespace

at::Tensor NormalizationScale(const at::Tensor& s, const at::Tensor& z, Normalization normalization) {
  if (normalization == Normalization::kNone) {
    return at::ones({}, s.options().dtype(at::kFloat));
  }
  // Sums in float64: with r in the thousands, float32 sums would move c by ~1e-6.
  const at::Tensor s64 = s.to(at::kDouble);
  const at::Tensor z64 = z.to(s.device(), at::kDouble);
  return (s64.sum() / (s64 * z64).sum()).to(at::kFloat);
}

at::Tensor ComposeWeight(const SvdFactors& factors, const at::Tensor& z, Normalization normalization) {
  // c folded into the r-vector: one [n, r] scaling instead of one over [n, m].
  const at::Tensor scale = factors.s * z.to(factors.s.device(), at::kFloat) *
                           NormalizationScale(factors.s, z, normalization);
  return at::matmul(factors.u * scale, factors.v.t());
}

absl::StatusOr<MergedWeights> MergedWeights::Create(model::LlamaModel& model,
                                                    const Decomposition& decomposition) {
  MergedWeights merged;
  merged.model_ = &model;
  merged.decomposition_ = &decomposition;
  try {
    c10::NoGradGuard no_grad;
    for (const std::string& name : decomposition.names()) {
      auto it = model.parameters().find(name);
      const SvdFactors* f = decomposition.Find(name);
      if (it == model.parameters().end() || f == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat("merged weights: no weight or factors for '", name, "'"));
      }
      const at::Tensor& w = it->second;
      if (w.dim() != 2 || w.size(0) != f->u.size(0) || w.size(1) != f->v.size(0)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "merged weights: '", name, "' has another shape than its factors (made for another model?)"));
      }
      merged.base_[name] = w.clone(at::MemoryFormat::Contiguous);
    }
  } catch (const c10::Error& e) {
    return model::TorchError("merged weights: snapshot of the base", e);
  }
  return merged;
}

absl::Status MergedWeights::Apply(const Expert& expert) {
  T2_RETURN_IF_ERROR(CheckShapes(expert, *decomposition_));
  try {
    c10::NoGradGuard no_grad;
    for (const std::string& name : decomposition_->names()) {
      const at::Tensor& w = model_->parameters().at(name);
      auto z = expert.z.find(name);
      if (z == expert.z.end()) {
        w.copy_(base_.at(name));
      } else {
        ComposeInto(*decomposition_->Find(name), z->second, expert.metadata.normalization, w);
      }
    }
  } catch (const c10::Error& e) {
    // Never leave a half-written mix of two experts behind.
    RestoreBase();
    return model::TorchError("applying expert", e);
  }
  return absl::OkStatus();
}

void MergedWeights::RestoreBase() {
  c10::NoGradGuard no_grad;
  for (const auto& [name, base] : base_) model_->parameters().at(name).copy_(base);
}

absl::StatusOr<std::map<std::string, at::Tensor>> MergedWeights::Compose(const Expert& expert) const {
  T2_RETURN_IF_ERROR(CheckShapes(expert, *decomposition_));
  std::map<std::string, at::Tensor> out;
  try {
    c10::NoGradGuard no_grad;
    for (const auto& [name, z] : expert.z) {
      const at::Tensor& base = base_.at(name);
      out[name] = ComposeWeight(*decomposition_->Find(name), z, expert.metadata.normalization)
                      .to(base.scalar_type());
    }
  } catch (const c10::Error& e) {
    return model::TorchError("composing expert", e);
  }
  return out;
}

absl::Status MergedWeights::Write(const std::map<std::string, at::Tensor>& composed) {
  for (const auto& [name, t] : composed) {
    auto it = base_.find(name);
    if (it == base_.end() || !t.defined() || t.sizes() != it->second.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("merged weights: composed '", name,
                                                     "' is not a target of this model or has the wrong shape"));
    }
  }
  try {
    c10::NoGradGuard no_grad;
    for (const auto& [name, base] : base_) {
      auto it = composed.find(name);
      model_->parameters().at(name).copy_(it != composed.end() ? it->second : base);
    }
  } catch (const c10::Error& e) {
    RestoreBase();  // never leave a half-written mix of two weight sets
    return absl::InternalError(absl::StrCat("merged weights: ", e.what_without_backtrace(), "; base restored"));
  }
  return absl::OkStatus();
}

int64_t MergedWeights::base_bytes() const {
  int64_t total = 0;
  for (const auto& [name, base] : base_) total += base.nbytes();
  return total;
}

}  // namespace t2::svf
