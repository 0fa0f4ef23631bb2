// What `t2 train` and the `t2-trainer` job share: the flags that choose the model, the task
// and the training settings, turned into the options of lib/engine, lib/tasks and
// lib/train; and the progress line printed per step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "t2/common/command_line.h"
#include "t2/engine/generator.h"
#include "t2/model/device_spec.h"
#include "t2/tasks/task.h"
#include "t2/train/trainer.h"

namespace t2::trainer {

// The shared flags' values, each starting at its default. std::optional where whether the
// flag was given matters (a built-in task keeps its own setting unless told otherwise, and
// refuses the flags that only describe a --data file).
struct TrainFlags {
  // Model and task.
  std::string model = "default";
  std::string task;  // exactly one of task and data
  std::string data;
  std::optional<std::string> data_format;  // auto
  std::string verifier;                    // required with data
  std::optional<std::string> name;         // the data file's stem
  std::optional<std::string> prompt_template;
  std::optional<std::string> answer_part;
  std::optional<int32_t> max_new_tokens;
  std::optional<int64_t> split_seed;
  std::optional<double> validation_fraction, test_fraction;
  // Training: train::TrainOptions' defaults.
  std::string work_dir;  // required by TrainSetupFromFlags
  int32_t steps = train::TrainOptions{}.steps;
  int32_t batch_size = train::TrainOptions{}.batch_size;
  int32_t micro_batch_size = train::TrainOptions{}.micro_batch_size;
  double lr = train::TrainOptions{}.learning_rate;
  double max_grad_norm = train::TrainOptions{}.max_grad_norm;
  double kl_coef = train::TrainOptions{}.kl_coef;
  int64_t seed = 0;
  double temperature = 0;
  std::string reward_baseline = "none";
  int32_t eval_every = train::TrainOptions{}.eval_every;
  int32_t validation_size = train::TrainOptions{}.validation_size;
  svf::TargetSet targets = svf::TargetSet::kMlp;
  // Engine.
  model::DeviceSpec device;
  model::ComputeDType dtype = model::ComputeDType::kAuto;
  int32_t threads = 0;
  int32_t max_batch_size = 32;  // rollouts and evaluation decode together
  std::string svf_cache_dir;
};

// Declares the shared flags on `app`, bound to `flags`, in sections of their own.
void AddTrainFlags(CLI::App& app, TrainFlags& flags);

struct TrainSetup {
  std::filesystem::path model_path;
  std::string model_name;  // as the worker registers it with the registry (the file's stem)
  engine::GeneratorOptions generator;
  tasks::Task task;
  train::TrainOptions train;
};

// InvalidArgument naming the flag; NotFound for a model or data file that does not exist.
absl::StatusOr<TrainSetup> TrainSetupFromFlags(const TrainFlags& flags);
// The parts of it: the task (--task or --data and its options) and the engine's options.
absl::StatusOr<tasks::Task> TaskFromFlags(const TrainFlags& flags);
absl::StatusOr<engine::GeneratorOptions> GeneratorFromFlags(
    const TrainFlags& flags, const std::filesystem::path& model_path);

// "step 12/100  reward -0.25  acc 0.38  loss 1.234  kl 0.0021  val 0.41  312 tok/s  ETA 4m10s"
void PrintStep(const train::StepReport& report, std::ostream& out);

}  // namespace t2::trainer
