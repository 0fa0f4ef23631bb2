#include "t2/train/trainer.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "checkpoint.h"
#include "nlohmann/json.hpp"
#include "seconds_since.h"
#include "svf_policy.h"
#include "t2/common/crash_point.h"
#include "t2/common/sha256.h"
#include "t2/common/status.h"
#include "t2/engine/model_access.h"
#include "t2/svf/expert.h"
#include "t2/train/evaluate.h"

namespace t2::train {
namespace {

constexpr const char* kCandidate = "train:candidate";

// Everything that decides the trained expert, hashed: a work folder trained with one set is
// never continued with another. The step count is left out so that a finished run can be
// extended; the micro-batch size too, since it only bounds memory.
std::string RunKey(const TrainOptions& o, const std::string& dataset_hash, const std::string& fingerprint,
                   const std::string& targets) {
  nlohmann::json key = {{"dataset", dataset_hash},       {"base", fingerprint},
                        {"targets", targets},            {"batch_size", o.batch_size},
                        {"learning_rate", o.learning_rate}, {"max_grad_norm", o.max_grad_norm},
                        {"kl_coef", o.kl_coef},          {"seed", o.seed},
                        {"temperature", o.temperature},  {"eval_every", o.eval_every},
                        {"reward_baseline", static_cast<int>(o.reward_baseline)},
                        {"validation_size", o.validation_size}};
  return Sha256Hex(key.dump());
}

// metrics.jsonl holds one line per completed step. A run killed after writing a line but
// before its checkpoint repeats that step: lines past the checkpoint are dropped first.
absl::Status TrimMetrics(const std::filesystem::path& path, int32_t last_step) {
  std::ifstream in(path);
  if (!in) return absl::OkStatus();
  std::string kept, line;
  bool dropped = false;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("step") && j["step"].get<int32_t>() <= last_step) {
      absl::StrAppend(&kept, line, "\n");
    } else {
      dropped = true;
    }
  }
  in.close();
  if (!dropped) return absl::OkStatus();
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot replace ", path.string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status AppendMetrics(const std::filesystem::path& path, const StepReport& r) {
  nlohmann::json j = {{"step", r.step},
                      {"reward_mean", r.reward_mean},
                      {"train_accuracy", r.train_accuracy},
                      {"loss", r.loss},
                      {"kl", r.kl},
                      {"grad_norm", r.grad_norm},
                      {"tokens", r.tokens},
                      {"seconds", r.seconds},
                      {"rollout_s", r.rollout_s},
                      {"compose_s", r.compose_s},
                      {"forward_s", r.forward_s},
                      {"backward_s", r.backward_s},
                      {"update_s", r.update_s},
                      {"eval_s", r.eval_s},
                      {"tokens_per_s", r.tokens_per_s}};
  if (r.validation_accuracy.has_value()) j["validation_accuracy"] = *r.validation_accuracy;
  std::ofstream out(path, std::ios::app);
  out << j.dump() << "\n";
  if (!out.flush()) return absl::InternalError(absl::StrCat("cannot append to ", path.string()));
  return absl::OkStatus();
}

class Run {
 public:
  Run(engine::Generator& generator, const tasks::Task& task, const TrainOptions& options)
      : generator_(generator), task_(task), options_(options), order_(options.seed, task.train.size()) {}

  absl::StatusOr<TrainResult> Go(const std::function<void(const StepReport&)>& on_step);

 private:
  absl::Status Setup();
  absl::StatusOr<std::vector<Rollout>> Rollouts(int32_t step, const std::vector<size_t>& batch, int64_t& tokens);
  absl::StatusOr<std::vector<Rollout>> ChoiceRollouts(const std::vector<size_t>& batch, int64_t& tokens);
  absl::StatusOr<double> Validate();
  // Step 0: the initial expert's validation accuracy is the bar to beat.
  absl::StatusOr<StepReport> EvaluateInitialExpert();
  // One REINFORCE step on `batch`: rollouts, rewards, gradients, the update. Fills `r`.
  absl::Status TrainStep(int32_t step, const std::vector<size_t>& batch, StepReport& r);
  // Every eval_every steps and at the last: validation, and the expert kept when it is the best.
  absl::Status ValidateIfDue(int32_t step, StepReport& r);
  svf::ExpertMetadata Metadata(int32_t step, double validation_accuracy) const;
  absl::Status PublishCandidate();

  engine::Generator& generator_;
  const tasks::Task& task_;
  const TrainOptions& options_;
  DataOrder order_;
  std::filesystem::path run_dir_, checkpoint_path_, metrics_path_, expert_path_;
  std::string dataset_hash_, targets_;
  const svf::Decomposition* decomposition_ = nullptr;
  std::unique_ptr<SvfPolicy> policy_;
  CheckpointState state_;
  bool resumed_ = false;
  std::map<size_t, std::vector<int32_t>> prompt_ids_;  // train example index -> prompt
  ChoiceTokens choices_;                               // tasks with choices
};

absl::Status Run::Setup() {
  T2_RETURN_IF_ERROR(options_.Validate());
  T2_RETURN_IF_ERROR(task_.Validate());
  if (!generator_.options().svf.has_value()) {
    return absl::FailedPreconditionError("train: the generator was created without SVF");
  }
  dataset_hash_ = tasks::DatasetHash(task_);
  targets_ = std::string(svf::TargetSetName(generator_.options().svf->targets));
  const std::string key = RunKey(options_, dataset_hash_, generator_.base_fingerprint(), targets_);
  run_dir_ = options_.work_dir / absl::StrCat(task_.name, "-", key.substr(0, 16));
  std::error_code ec;
  std::filesystem::create_directories(run_dir_, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("train: work dir ", run_dir_.string(), ": ", ec.message()));
  checkpoint_path_ = run_dir_ / "checkpoint.safetensors";
  metrics_path_ = run_dir_ / "metrics.jsonl";
  expert_path_ = run_dir_ / "expert.safetensors";
  T2_RETURN_IF_ERROR(engine::TrainingAccess::WithModel(generator_, [&](const engine::ModelAccess& access) {
    decomposition_ = &access.decomposition;  // lives as long as the generator, never changes
    return absl::OkStatus();
  }));
  T2_ASSIGN_OR_RETURN(policy_, SvfPolicy::Create(*decomposition_, options_.seed, options_.learning_rate));
  T2_ASSIGN_OR_RETURN(std::optional<CheckpointState> saved, ReadCheckpoint(checkpoint_path_));
  if (saved.has_value()) {
    if (saved->run_key != key) {  // a folder name shared by two keys' first 16 hex digits
      return absl::FailedPreconditionError(
          absl::StrCat("train: ", run_dir_.string(), " holds a run with other arguments; remove it"));
    }
    T2_RETURN_IF_ERROR(Annotate(policy_->Restore(saved->policy_state, saved->adam_steps),
                                absl::StrCat("checkpoint ", checkpoint_path_.string())));
    T2_RETURN_IF_ERROR(order_.FromJson(saved->data_order_json));
    saved->policy_state.clear();
    state_ = *std::move(saved);
    resumed_ = true;
    return TrimMetrics(metrics_path_, state_.step);
  }
  state_.run_key = key;
  state_.created_at = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
  std::filesystem::remove(metrics_path_, ec);
  return absl::OkStatus();
}

svf::ExpertMetadata Run::Metadata(int32_t step, double validation_accuracy) const {
  svf::ExpertMetadata m;
  m.base_model = options_.base_model;
  m.base_fingerprint = generator_.base_fingerprint();
  m.targets = decomposition_->targets();
  m.normalization = svf::Normalization::kNuclearNorm;
  m.task = task_.name;
  m.created_at = state_.created_at;
  m.metrics_json = nlohmann::json{{"step", step},
                                  {"validation_accuracy", validation_accuracy},
                                  {"validation_n", options_.validation_size > 0
                                                       ? std::min<size_t>(options_.validation_size, task_.validation.size())
                                                       : task_.validation.size()},
                                  {"kl_coef", options_.kl_coef},
                                  {"learning_rate", options_.learning_rate},
                                  {"batch_size", options_.batch_size},
                                  {"reward_baseline", options_.reward_baseline ==
                                                              TrainOptions::RewardBaseline::kLeaveOneOutMean
                                                          ? "leave-one-out mean"
                                                          : "none"},
                                  {"seed", options_.seed},
                                  {"dataset_hash", dataset_hash_}}
                       .dump();
  return m;
}

absl::Status Run::PublishCandidate() {
  return engine::TrainingAccess::AddExpert(generator_, kCandidate, policy_->ToExpert(Metadata(state_.step, 0)));
}

absl::StatusOr<std::vector<Rollout>> Run::Rollouts(int32_t step, const std::vector<size_t>& batch, int64_t& tokens) {
  if (!task_.choices.empty()) return ChoiceRollouts(batch, tokens);
  std::vector<engine::GenerationRequest> requests;
  for (size_t i = 0; i < batch.size(); ++i) {
    auto& ids = prompt_ids_[batch[i]];
    if (ids.empty()) {
      T2_ASSIGN_OR_RETURN(ids, PromptIds(generator_, task_, task_.train[batch[i]]));
    }
    engine::GenerationRequest r;
    r.prompt_ids = ids;
    r.max_new_tokens = task_.max_new_tokens;
    r.adapter = kCandidate;
    r.sampling.temperature = options_.temperature;
    // A seed per (run, step, row): a resumed run samples what the first one would have.
    r.sampling.seed = options_.seed * 1000003ULL + static_cast<uint64_t>(step) * 1009ULL + i;
    requests.push_back(std::move(r));
  }
  T2_ASSIGN_OR_RETURN(std::vector<engine::GenerationResult> results, generator_.Generate(requests));
  std::vector<Rollout> rollouts;
  for (size_t i = 0; i < batch.size(); ++i) {
    const bool right = task_.IsCorrect(task_.train[batch[i]], results[i].text);
    tokens += static_cast<int64_t>(results[i].token_ids.size());
    rollouts.push_back({requests[i].prompt_ids, results[i].token_ids, right ? 1.0 : -1.0});
  }
  return rollouts;
}

// For a task answered by choosing (tasks::Task::choices): the choice the current expert
// scores highest is its answer, and the loss runs over that choice's own tokens (from where
// the choices depart; the part they share decides nothing).
absl::StatusOr<std::vector<Rollout>> Run::ChoiceRollouts(const std::vector<size_t>& batch, int64_t& tokens) {
  if (choices_.ids.empty()) {
    T2_ASSIGN_OR_RETURN(choices_, TokenizeChoices(generator_, task_));
  }
  std::vector<Rollout> rollouts;
  for (size_t index : batch) {
    auto& ids = prompt_ids_[index];
    if (ids.empty()) {
      T2_ASSIGN_OR_RETURN(ids, PromptIds(generator_, task_, task_.train[index]));
    }
    T2_ASSIGN_OR_RETURN(size_t k, Choose(generator_, ids, choices_, kCandidate));
    const std::vector<int32_t>& choice = choices_.ids[k];
    Rollout r;
    r.prompt = ids;
    r.prompt.insert(r.prompt.end(), choice.begin(), choice.begin() + static_cast<std::ptrdiff_t>(choices_.shared));
    r.completion.assign(choice.begin() + static_cast<std::ptrdiff_t>(choices_.shared), choice.end());
    r.reward = task_.IsCorrect(task_.train[index], task_.choices[k]) ? 1.0 : -1.0;
    tokens += static_cast<int64_t>(r.prompt.size());
    rollouts.push_back(std::move(r));
  }
  return rollouts;
}

absl::StatusOr<double> Run::Validate() {
  std::span<const tasks::Example> examples(task_.validation);
  if (options_.validation_size > 0 && static_cast<size_t>(options_.validation_size) < examples.size()) {
    examples = examples.first(static_cast<size_t>(options_.validation_size));
  }
  T2_ASSIGN_OR_RETURN(EvalResult r, Evaluate(generator_, task_, examples, kCandidate));
  return r.accuracy;
}

absl::StatusOr<StepReport> Run::EvaluateInitialExpert() {
  // The initial expert has z ≈ 0.525 everywhere, so W' ≈ W.
  const auto start = std::chrono::steady_clock::now();
  T2_RETURN_IF_ERROR(PublishCandidate());
  T2_ASSIGN_OR_RETURN(double accuracy, Validate());
  state_.best_validation_accuracy = accuracy;
  state_.best_step = 0;
  T2_RETURN_IF_ERROR(svf::WriteExpert(policy_->ToExpert(Metadata(0, accuracy)), expert_path_));
  state_.data_order_json = order_.ToJson();
  StepReport r{.step = 0, .steps = options_.steps, .validation_accuracy = accuracy};
  r.eval_s = r.seconds = SecondsSince(start);
  T2_RETURN_IF_ERROR(AppendMetrics(metrics_path_, r));
  T2_RETURN_IF_ERROR(WriteCheckpoint(checkpoint_path_, *policy_, state_));
  return r;
}

absl::Status Run::TrainStep(int32_t step, const std::vector<size_t>& batch, StepReport& r) {
  auto phase = std::chrono::steady_clock::now();
  T2_RETURN_IF_ERROR(PublishCandidate());
  T2_ASSIGN_OR_RETURN(std::vector<Rollout> rollouts, Rollouts(step, batch, r.tokens));
  r.rollout_s = SecondsSince(phase);
  int64_t right = 0;
  for (const Rollout& ro : rollouts) right += ro.reward > 0 ? 1 : 0;
  r.train_accuracy = static_cast<double>(right) / static_cast<double>(rollouts.size());
  r.reward_mean = 2 * r.train_accuracy - 1;
  if (options_.reward_baseline == TrainOptions::RewardBaseline::kLeaveOneOutMean &&
      rollouts.size() > 1) {
    double sum = 0;
    for (const Rollout& ro : rollouts) sum += ro.reward;
    const double others = static_cast<double>(rollouts.size() - 1);
    for (Rollout& ro : rollouts) ro.reward -= (sum - ro.reward) / others;
  }

  GradientReport g;
  T2_RETURN_IF_ERROR(
      engine::TrainingAccess::WithModel(generator_, [&](const engine::ModelAccess& access) {
        T2_ASSIGN_OR_RETURN(g,
                            policy_->ComputeGradients(access.model, access.decomposition, rollouts,
                                                      options_.micro_batch_size, options_.kl_coef));
        return absl::OkStatus();
      }));
  r.loss = g.loss;
  r.kl = g.kl;
  r.tokens += g.tokens;
  r.compose_s = g.compose_s;
  r.forward_s = g.forward_s;
  r.backward_s = g.backward_s;
  phase = std::chrono::steady_clock::now();
  r.grad_norm = policy_->Step(options_.max_grad_norm);
  r.update_s = SecondsSince(phase);
  return absl::OkStatus();
}

absl::Status Run::ValidateIfDue(int32_t step, StepReport& r) {
  if (step % options_.eval_every != 0 && step != options_.steps) return absl::OkStatus();
  const auto phase = std::chrono::steady_clock::now();
  T2_RETURN_IF_ERROR(PublishCandidate());
  T2_ASSIGN_OR_RETURN(double accuracy, Validate());
  r.validation_accuracy = accuracy;
  if (accuracy > state_.best_validation_accuracy) {
    state_.best_validation_accuracy = accuracy;
    state_.best_step = step;
    T2_RETURN_IF_ERROR(svf::WriteExpert(policy_->ToExpert(Metadata(step, accuracy)), expert_path_));
  }
  r.eval_s = SecondsSince(phase);
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> Run::Go(const std::function<void(const StepReport&)>& on_step) {
  const auto call_start = std::chrono::steady_clock::now();
  T2_RETURN_IF_ERROR(Setup());
  TrainResult result;
  result.resumed_from_step = resumed_ ? state_.step : 0;
  result.dataset_hash = dataset_hash_;
  if (!resumed_) {
    T2_ASSIGN_OR_RETURN(StepReport r, EvaluateInitialExpert());
    if (on_step) on_step(r);
  }
  const int32_t first_step = state_.step;
  const auto loop_start = std::chrono::steady_clock::now();
  while (state_.step < options_.steps) {
    const int32_t step = state_.step + 1;
    const auto start = std::chrono::steady_clock::now();
    StepReport r{.step = step, .steps = options_.steps};
    T2_RETURN_IF_ERROR(TrainStep(step, order_.Next(static_cast<size_t>(options_.batch_size)), r));
    state_.step = step;
    T2_RETURN_IF_ERROR(ValidateIfDue(step, r));
    r.seconds = SecondsSince(start);
    r.tokens_per_s = r.seconds > 0 ? static_cast<double>(r.tokens) / r.seconds : 0;
    const double per_step = SecondsSince(loop_start) / static_cast<double>(step - first_step);
    r.eta_s = per_step * (options_.steps - step);
    state_.train_seconds += r.seconds;
    state_.data_order_json = order_.ToJson();
    // The metrics line first, then the checkpoint: a kill in between repeats this step on the
    // next run, which drops the line first (TrimMetrics).
    T2_RETURN_IF_ERROR(AppendMetrics(metrics_path_, r));
    CrashPoint("T2_TRAINER_CRASH_AT", absl::StrCat("after_metrics:", step));
    T2_RETURN_IF_ERROR(WriteCheckpoint(checkpoint_path_, *policy_, state_));
    if (on_step) on_step(r);
  }
  (void)generator_.RemoveAdapter(kCandidate);  // absent when the run was already finished
  result.run_dir = run_dir_;
  result.expert = expert_path_;
  result.train_seconds = state_.train_seconds;
  result.best_step = state_.best_step;
  result.best_validation_accuracy = state_.best_validation_accuracy;
  result.steps = state_.step;
  result.seconds = SecondsSince(call_start);
  return result;
}

}  // namespace

absl::Status TrainOptions::Validate() const {
  if (work_dir.empty()) return absl::InvalidArgumentError("train.work_dir: empty");
  auto positive = [](const char* field, int64_t v) -> absl::Status {
    if (v < 1) return absl::InvalidArgumentError(absl::StrCat("train.", field, " must be >= 1, got ", v));
    return absl::OkStatus();
  };
  T2_RETURN_IF_ERROR(positive("steps", steps));
  T2_RETURN_IF_ERROR(positive("batch_size", batch_size));
  T2_RETURN_IF_ERROR(positive("micro_batch_size", micro_batch_size));
  T2_RETURN_IF_ERROR(positive("eval_every", eval_every));
  if (!std::isfinite(learning_rate) || learning_rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("train.learning_rate must be > 0, got ", learning_rate));
  }
  if (!std::isfinite(max_grad_norm) || max_grad_norm <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("train.max_grad_norm must be > 0, got ", max_grad_norm));
  }
  if (!std::isfinite(kl_coef) || kl_coef < 0) {
    return absl::InvalidArgumentError(absl::StrCat("train.kl_coef must be >= 0, got ", kl_coef));
  }
  if (validation_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat("train.validation_size must be >= 0, got ", validation_size));
  }
  engine::SamplingParams sampling{.temperature = temperature};
  return Annotate(sampling.Validate(), "train.temperature");
}

absl::StatusOr<TrainResult> Train(engine::Generator& generator, const tasks::Task& task, const TrainOptions& options,
                                  const std::function<void(const StepReport&)>& on_step) {
  Run run(generator, task, options);
  return run.Go(on_step);
}

}  // namespace t2::train
