// The trainable state of one SVF expert and the gradient of the REINFORCE objective
// (SVF.md §2). Sees LibTorch; lib/train's public headers do not.
//
// Not thread-safe. ComputeGradients runs the model: call it inside
// engine::TrainingAccess::WithModel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"

namespace torch::optim {
class Adam;
}

namespace t2::train {

// One answer the current expert gave, and what it earned.
struct Rollout {
  std::vector<int32_t> prompt;      // the prompt's ids
  std::vector<int32_t> completion;  // the generated ids (a final end-of-sequence included), non-empty
  double reward = 0;                // +1 accepted, -1 not
};

struct GradientReport {
  double loss = 0;     // the batch loss (REINFORCE + λ·KL, mean over the batch)
  double kl = 0;       // mean over the batch of Σₜ KL(π_W' ‖ π_W); 0 when λ = 0 (not computed)
  int64_t tokens = 0;  // sequence positions the forward passes ran
  double compose_s = 0, forward_s = 0, backward_s = 0;
};

class SvfPolicy {
 public:
  // p = 0.1 + 0.01·N(0, 1) for every target matrix of `decomposition` (a CPU generator seeded
  // with `seed`, matrices in decomposition order), on the factors' device.
  static absl::StatusOr<std::unique_ptr<SvfPolicy>> Create(const svf::Decomposition& decomposition, uint64_t seed,
                                                           double learning_rate);
  ~SvfPolicy();

  // p by HF matrix name: float32 [r], requires grad.
  const std::map<std::string, at::Tensor>& p() const { return p_; }
  // Replaces p's values (same names and shapes; InvalidArgument otherwise).
  absl::Status SetP(const std::map<std::string, at::Tensor>& values);

  // z = sigmoid(p) on the CPU, as an expert file would hold it.
  svf::Expert ToExpert(svf::ExpertMetadata metadata) const;

  // Sets p's gradient to that of the batch loss over `rollouts`:
  //   (1/B) Σ_b [ -(Σₜ log π_W'(ŷₜ | x, ŷ<ₜ)) · r_b  +  λ · Σₜ KL(π_W'(· | …) ‖ π_W(· | …)) ]
  // where t runs over each completion's tokens and W' = c · U diag(σ ⊙ sigmoid(p)) Vᵀ. W' is
  // composed once; the rollouts, grouped by length, run forward and backward
  // `micro_batch_size` at a time (their gradients add up), then the gradient with respect to
  // W' flows back into p.
  absl::StatusOr<GradientReport> ComputeGradients(model::LlamaModel& model, const svf::Decomposition& decomposition,
                                                  std::span<const Rollout> rollouts, int32_t micro_batch_size,
                                                  double kl_coef);

  // Clips the gradient to a global L2 norm of `max_grad_norm` (torch's clip_grad_norm_) and
  // takes one Adam step. Returns the norm before clipping.
  double Step(double max_grad_norm);

  // Adam's state and p, for checkpoints: "p/<name>", "adam_m/<name>", "adam_v/<name>"
  // (float32 CPU), and the number of Adam steps taken.
  std::map<std::string, at::Tensor> State() const;
  int64_t adam_steps() const;
  absl::Status Restore(const std::map<std::string, at::Tensor>& state, int64_t adam_steps);

 private:
  SvfPolicy() = default;
  std::vector<std::string> names_;
  std::map<std::string, at::Tensor> p_;
  std::unique_ptr<torch::optim::Adam> adam_;
};

}  // namespace t2::train
