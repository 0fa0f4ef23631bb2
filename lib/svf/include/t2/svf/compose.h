// Σ′ rebuild: W' = c · U diag(σ ⊙ z) Vᵀ written into the model's weights (merged form).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <ATen/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"

namespace t2::svf {

// c = Σσ / Σσz for kNuclearNorm, 1 for kNone (float32 scalar tensor on s's device).
at::Tensor NormalizationScale(const at::Tensor& s, const at::Tensor& z, Normalization normalization);

// c · U diag(σ ⊙ z) Vᵀ in float32 on the factors' device, [n, m].
at::Tensor ComposeWeight(const SvdFactors& factors, const at::Tensor& z, Normalization normalization);

// Owns a copy of the base target matrices of one model so that experts can be merged into
// its weights and removed again exactly. Not thread-safe: the caller serialises it with
// Forward (the engine's scheduler does).
class MergedWeights {
 public:
  // Snapshots the model's current target weights as the base (call before any expert).
  static absl::StatusOr<MergedWeights> Create(model::LlamaModel& model, const Decomposition& decomposition);

  // Writes W' for every matrix the expert covers and the base weights into every other
  // target, in the model's dtype. The expert must have passed ValidateExpert.
  absl::Status Apply(const Expert& expert);
  // Restores the exact base weights (bit-identical to the snapshot).
  void RestoreBase();

  // The W' tensors Apply would write, in the model's dtype (for caching merged sets).
  absl::StatusOr<std::map<std::string, at::Tensor>> Compose(const Expert& expert) const;
  // Writes previously composed tensors (from Compose) and the base everywhere else.
  // InvalidArgument (nothing written) if a tensor is not a target or has the wrong shape;
  // if LibTorch fails midway, the base is restored and the error returned.
  absl::Status Write(const std::map<std::string, at::Tensor>& composed);

  int64_t base_bytes() const;

 private:
  model::LlamaModel* model_ = nullptr;
  const Decomposition* decomposition_ = nullptr;
  std::map<std::string, at::Tensor> base_;  // model dtype and device
};

}  // namespace t2::svf
