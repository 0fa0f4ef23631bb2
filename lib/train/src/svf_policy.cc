#include "svf_policy.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "seconds_since.h"
#include "t2/common/status.h"
#include "t2/model/torch_error.h"
#include "t2/svf/compose.h"

namespace t2::train {
namespace {

// A GPU runs kernels after the call that queued them returns: wait for the stream (reading one
// value does) so that each phase's time in the report is its own. Nothing to wait for on a CPU.
void WaitForDevice(const at::Tensor& t) {
  if (t.defined() && t.is_cuda()) (void)t.sum().item<double>();
}

// One micro-batch as the training forward takes it: right-padded ids, lengths, where each
// completion starts, and per scored position its target token and its rollout.
struct MicroBatch {
  at::Tensor tokens;  // [b, T] int64 CPU
  std::vector<int64_t> lengths, scored_from;
  at::Tensor targets;  // [N] int64 on the device
  at::Tensor owner;    // [N] int64 on the device: the row each scored token belongs to
  at::Tensor rewards;  // [b] float32 on the device
};

MicroBatch Pack(std::span<const Rollout> rollouts, const at::Device& device) {
  MicroBatch mb;
  int64_t width = 0;
  for (const Rollout& r : rollouts) width = std::max<int64_t>(width, r.prompt.size() + r.completion.size());
  mb.tokens = at::zeros({static_cast<int64_t>(rollouts.size()), width}, at::kLong);
  auto ids = mb.tokens.accessor<int64_t, 2>();
  std::vector<int64_t> targets, owner;
  std::vector<float> rewards;
  for (size_t b = 0; b < rollouts.size(); ++b) {
    const Rollout& r = rollouts[b];
    int64_t t = 0;
    for (int32_t id : r.prompt) ids[b][t++] = id;
    for (int32_t id : r.completion) {
      ids[b][t++] = id;
      targets.push_back(id);
      owner.push_back(static_cast<int64_t>(b));
    }
    mb.lengths.push_back(t);
    mb.scored_from.push_back(static_cast<int64_t>(r.prompt.size()));
    rewards.push_back(static_cast<float>(r.reward));
  }
  mb.targets = at::tensor(targets, at::kLong).to(device);
  mb.owner = at::tensor(owner, at::kLong).to(device);
  mb.rewards = at::tensor(rewards, at::kFloat).to(device);
  return mb;
}

}  // namespace

SvfPolicy::~SvfPolicy() = default;

absl::StatusOr<std::unique_ptr<SvfPolicy>> SvfPolicy::Create(const svf::Decomposition& decomposition, uint64_t seed,
                                                             double learning_rate) {
  std::unique_ptr<SvfPolicy> policy(new SvfPolicy());
  try {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<at::Tensor> params;
    for (const std::string& name : decomposition.names()) {
      const svf::SvdFactors* f = decomposition.Find(name);
      at::Tensor p = (0.1 + 0.01 * at::randn({f->rank()}, generator, at::TensorOptions().dtype(at::kFloat)))
                         .to(f->s.device())
                         .detach()
                         .requires_grad_(true);
      policy->names_.push_back(name);
      policy->p_[name] = p;
      params.push_back(p);
    }
    policy->adam_ = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(learning_rate));
  } catch (const c10::Error& e) {
    return model::TorchError("svf policy", e);
  }
  return policy;
}

absl::Status SvfPolicy::SetP(const std::map<std::string, at::Tensor>& values) {
  for (const std::string& name : names_) {
    auto it = values.find(name);
    if (it == values.end()) return absl::InvalidArgumentError(absl::StrCat("p: no values for '", name, "'"));
    if (!it->second.sizes().equals(p_[name].sizes())) {
      return absl::InvalidArgumentError(absl::StrCat("p '", name, "': ", it->second.numel(), " values, expected ",
                                                     p_[name].numel()));
    }
  }
  if (values.size() != names_.size()) return absl::InvalidArgumentError("p: values for matrices that are not targets");
  try {
    c10::NoGradGuard no_grad;
    for (const std::string& name : names_) p_[name].copy_(values.at(name));
  } catch (const c10::Error& e) {
    return model::TorchError("p", e);
  }
  return absl::OkStatus();
}

svf::Expert SvfPolicy::ToExpert(svf::ExpertMetadata metadata) const {
  svf::Expert expert;
  expert.metadata = std::move(metadata);
  c10::NoGradGuard no_grad;
  for (const auto& [name, p] : p_) expert.z[name] = at::sigmoid(p).to(at::kCPU).contiguous().clone();
  return expert;
}

absl::StatusOr<GradientReport> SvfPolicy::ComputeGradients(model::LlamaModel& model,
                                                           const svf::Decomposition& decomposition,
                                                           std::span<const Rollout> rollouts, int32_t micro_batch_size,
                                                           double kl_coef) {
  if (rollouts.empty()) return absl::InvalidArgumentError("gradients: no rollouts");
  if (micro_batch_size < 1) return absl::InvalidArgumentError("gradients: micro_batch_size must be >= 1");
  for (size_t i = 0; i < rollouts.size(); ++i) {
    if (rollouts[i].prompt.empty() || rollouts[i].completion.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("gradients: rollout ", i, " has an empty prompt or completion"));
    }
  }
  GradientReport report;
  try {
    for (auto& [_, p] : p_) p.mutable_grad() = at::Tensor();
    // W' with autograd from p, once for the whole batch. The forward passes take detached
    // copies (leaves) so that each micro-batch's backward stops at W'; their gradients
    // accumulate there and flow into p in one backward through the composition at the end.
    auto start = std::chrono::steady_clock::now();
    const at::ScalarType dtype = model.parameters().at(names_.front()).scalar_type();
    std::vector<at::Tensor> composed, leaves;
    std::map<std::string, at::Tensor> weights;
    for (const std::string& name : names_) {
      const svf::SvdFactors* f = decomposition.Find(name);
      if (f == nullptr) return absl::InvalidArgumentError(absl::StrCat("gradients: '", name, "' is not decomposed"));
      at::Tensor w = svf::ComposeWeight(*f, at::sigmoid(p_[name]), svf::Normalization::kNuclearNorm).to(dtype);
      at::Tensor leaf = w.detach().requires_grad_(true);
      composed.push_back(w);
      leaves.push_back(leaf);
      weights[name] = leaf;
    }
    WaitForDevice(leaves.back());
    report.compose_s = SecondsSince(start);

    const double batch = static_cast<double>(rollouts.size());
    const at::Device device = composed.front().device();
    // Micro-batches of similar lengths: each is padded to its longest sequence, so grouping by
    // length saves the padding's compute (the loss is a sum over rollouts: order is free).
    std::vector<Rollout> sorted(rollouts.begin(), rollouts.end());
    std::stable_sort(sorted.begin(), sorted.end(), [](const Rollout& a, const Rollout& b) {
      return a.prompt.size() + a.completion.size() < b.prompt.size() + b.completion.size();
    });
    double kl_sum = 0;
    for (size_t first = 0; first < sorted.size(); first += static_cast<size_t>(micro_batch_size)) {
      auto part = std::span<const Rollout>(sorted).subspan(first, std::min<size_t>(micro_batch_size, sorted.size() - first));
      start = std::chrono::steady_clock::now();
      MicroBatch mb = Pack(part, device);
      for (int64_t len : mb.lengths) report.tokens += len;
      T2_ASSIGN_OR_RETURN(at::Tensor logits, model.ForwardTrain(mb.tokens, mb.lengths, mb.scored_from, weights));
      at::Tensor logp = at::log_softmax(logits, -1);  // [N, V]
      at::Tensor token_logp = logp.gather(1, mb.targets.unsqueeze(1)).squeeze(1);
      const int64_t rows = static_cast<int64_t>(part.size());
      at::Tensor sequence_logp = at::zeros({rows}, logp.options()).index_add(0, mb.owner, token_logp);
      at::Tensor loss = -(sequence_logp * mb.rewards).sum();
      if (kl_coef > 0) {
        at::Tensor base_logp;
        {
          c10::NoGradGuard no_grad;
          T2_ASSIGN_OR_RETURN(at::Tensor base, model.ForwardTrain(mb.tokens, mb.lengths, mb.scored_from, {}));
          base_logp = at::log_softmax(base, -1);
        }
        at::Tensor kl_t = (logp.exp() * (logp - base_logp)).sum(-1);  // [N]
        at::Tensor sequence_kl = at::zeros({rows}, logp.options()).index_add(0, mb.owner, kl_t);
        loss = loss + kl_coef * sequence_kl.sum();
        kl_sum += sequence_kl.sum().item<double>();
      }
      loss = loss / batch;
      report.loss += loss.item<double>();
      report.forward_s += SecondsSince(start);
      start = std::chrono::steady_clock::now();
      loss.backward();
      WaitForDevice(leaves.front().grad());
      report.backward_s += SecondsSince(start);
    }
    start = std::chrono::steady_clock::now();
    std::vector<at::Tensor> grads;
    for (const at::Tensor& leaf : leaves) {
      grads.push_back(leaf.grad().defined() ? leaf.grad() : at::zeros_like(leaf));
    }
    torch::autograd::backward(composed, grads);
    WaitForDevice(p_.begin()->second.grad());
    report.backward_s += SecondsSince(start);
    report.kl = kl_sum / batch;
  } catch (const c10::Error& e) {
    return model::TorchError("gradients", e);
  }
  return report;
}

double SvfPolicy::Step(double max_grad_norm) {
  std::vector<at::Tensor> params;
  for (const std::string& name : names_) params.push_back(p_[name]);
  const double norm = torch::nn::utils::clip_grad_norm_(params, max_grad_norm);
  adam_->step();
  return norm;
}

std::map<std::string, at::Tensor> SvfPolicy::State() const {
  std::map<std::string, at::Tensor> state;
  c10::NoGradGuard no_grad;
  for (const std::string& name : names_) {
    const at::Tensor& p = p_.at(name);
    state["p/" + name] = p.detach().to(at::kCPU).contiguous().clone();
    auto it = adam_->state().find(p.unsafeGetTensorImpl());
    if (it == adam_->state().end()) continue;
    const auto& s = static_cast<const torch::optim::AdamParamState&>(*it->second);
    state["adam_m/" + name] = s.exp_avg().to(at::kCPU).contiguous().clone();
    state["adam_v/" + name] = s.exp_avg_sq().to(at::kCPU).contiguous().clone();
  }
  return state;
}

int64_t SvfPolicy::adam_steps() const {
  auto it = adam_->state().find(p_.at(names_.front()).unsafeGetTensorImpl());
  return it == adam_->state().end() ? 0 : static_cast<const torch::optim::AdamParamState&>(*it->second).step();
}

absl::Status SvfPolicy::Restore(const std::map<std::string, at::Tensor>& state, int64_t adam_steps) {
  std::map<std::string, at::Tensor> p;
  for (const std::string& name : names_) {
    auto it = state.find("p/" + name);
    if (it == state.end()) return absl::DataLossError(absl::StrCat("checkpoint: no p for '", name, "'"));
    p[name] = it->second;
  }
  T2_RETURN_IF_ERROR(SetP(p));
  if (adam_steps == 0) return absl::OkStatus();
  try {
    for (const std::string& name : names_) {
      auto m = state.find("adam_m/" + name), v = state.find("adam_v/" + name);
      if (m == state.end() || v == state.end()) {
        return absl::DataLossError(absl::StrCat("checkpoint: no Adam state for '", name, "'"));
      }
      const at::Tensor& param = p_[name];
      if (!m->second.sizes().equals(param.sizes()) || !v->second.sizes().equals(param.sizes())) {
        return absl::DataLossError(absl::StrCat("checkpoint: Adam state for '", name, "' has the wrong shape"));
      }
      auto s = std::make_unique<torch::optim::AdamParamState>();
      s->step(adam_steps);
      s->exp_avg(m->second.to(param.device()).clone());
      s->exp_avg_sq(v->second.to(param.device()).clone());
      adam_->state()[param.unsafeGetTensorImpl()] = std::move(s);
    }
  } catch (const c10::Error& e) {
    return model::TorchError("checkpoint: Adam state", e);
  }
  return absl::OkStatus();
}

}  // namespace t2::train
