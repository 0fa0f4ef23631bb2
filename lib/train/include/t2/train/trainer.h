// Training an SVF expert with REINFORCE (SVF.md §2), torch-free for its callers.
//
// Each step: the current expert z = sigmoid(p) answers a batch of training prompts through
// the generator (rollouts, greedy by default like the reference); the task's verifier gives
// each answer a reward of +1 or -1; then, on the same model (engine::TrainingAccess), W' is
// composed from the cached SVD with autograd and the loss
//     mean over the batch of  -(Σₜ log π_W'(ŷₜ)) · r  +  λ · Σₜ KL(π_W'(·) ‖ π_W(·))
// is back-propagated into p, in micro-batches whose gradients add up (bounding memory);
// the gradient norm is clipped and Adam updates p. Every `eval_every` steps the validation
// accuracy is measured and the best expert so far is kept.
//
// Each run lives in its own folder under the work folder, named by the task and a hash of
// everything that decides its result (task data, base model, targets, batch size, learning
// rate, clip, λ, seed, temperature, reward baseline, validation settings; not the step count, so a finished
// run can be extended, nor the micro-batch size): a checkpoint (p, Adam's state, the step,
// the data order; the sampling seeds derive from the seed and the step) written atomically
// after every step, the best expert, and a metrics.jsonl line per step. A run killed at any
// point (kill -9) continues from its last checkpoint when started again with the same
// arguments, and ends with the same expert as a run never interrupted (on the same machine
// and thread count); a finished run is found finished and returned at once. For the tests,
// T2_TRAINER_CRASH_AT=after_metrics:<step> kills the process between a step's metrics line
// and its checkpoint (t2/common/crash_point.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "t2/engine/generator.h"
#include "t2/tasks/task.h"

namespace t2::train {

struct TrainOptions {
  std::filesystem::path work_dir;  // required; holds one folder per run
  int32_t steps = 100;
  int32_t batch_size = 16;         // prompts per step, one rollout each
  int32_t micro_batch_size = 4;    // sequences per forward/backward pass
  double learning_rate = 2e-3;     // Adam (β = 0.9, 0.999; ε = 1e-8)
  double max_grad_norm = 1e-3;     // global L2 norm over every p
  double kl_coef = 0.0;            // λ; 0 skips the base model's forward pass
  uint64_t seed = 0;               // data order, p's initialisation, sampling
  float temperature = 0;           // rollouts: 0 = greedy (the reference's choice)
  // What multiplies −Σₜ log π of a rollout. kNone: its reward r (+1/−1), the reference's
  // loss. kLeaveOneOutMean: r minus the mean reward of the batch's other rollouts, the usual
  // REINFORCE baseline (the same expected gradient, less variance). It matters for a weak
  // model: when most answers are wrong, plain ±1 rewards mostly push the model away from
  // whatever it says, which can break it (bench/README.md, "Trainer"); with the baseline a
  // batch of only wrong (or only right) answers changes nothing.
  enum class RewardBaseline { kNone, kLeaveOneOutMean };
  RewardBaseline reward_baseline = RewardBaseline::kNone;
  int32_t eval_every = 10;         // validation every N steps and after the last
  int32_t validation_size = 0;     // validation examples used (0: the whole split)
  std::string base_model;          // recorded in the expert's metadata

  absl::Status Validate() const;
};

// One step's figures, reported after it (and written to metrics.jsonl).
struct StepReport {
  int32_t step = 0;  // 1-based
  int32_t steps = 0;
  double reward_mean = 0;    // in [-1, 1]
  double train_accuracy = 0; // share of rewards that were +1
  double loss = 0;
  double kl = 0;             // mean per sample of Σₜ KL (0 when λ = 0: not computed)
  double grad_norm = 0;      // before clipping
  std::optional<double> validation_accuracy;
  int64_t tokens = 0;        // rollout tokens generated + sequence tokens trained on
  double seconds = 0;        // the whole step
  double rollout_s = 0, compose_s = 0, forward_s = 0, backward_s = 0, update_s = 0, eval_s = 0;
  double tokens_per_s = 0;
  double eta_s = 0;          // for the remaining steps at this run's mean step time
};

struct TrainResult {
  std::filesystem::path run_dir;      // work_dir/<task>-<run hash>
  std::filesystem::path expert;       // the best expert (run_dir/expert.safetensors)
  int32_t best_step = 0;              // 0: the initial p was never beaten
  double best_validation_accuracy = 0;
  int32_t steps = 0;
  int32_t resumed_from_step = 0;      // 0: started fresh
  double seconds = 0;                 // this call's wall time
  double train_seconds = 0;           // the run's training time over every call that ran it
  std::string dataset_hash;
};

// Runs (or resumes, or finds finished) the training of `task`'s expert on `generator`'s
// model, whose SVF options give the target set. The adapter names "train:candidate" and
// "train:best" are used on the generator while it runs. on_step may be null.
absl::StatusOr<TrainResult> Train(engine::Generator& generator, const tasks::Task& task, const TrainOptions& options,
                                  const std::function<void(const StepReport&)>& on_step = nullptr);

}  // namespace t2::train
