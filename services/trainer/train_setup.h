// What `t2 train` and the `t2-trainer` job share: the flags that choose the model, the task
// and the training settings, turned into the options of lib/engine, lib/tasks and
// lib/train; and the progress line printed per step.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>

#include "absl/status/statusor.h"
#include "t2/common/flags.h"
#include "t2/engine/generator.h"
#include "t2/tasks/task.h"
#include "t2/train/trainer.h"

namespace t2::trainer {

// Adds the shared flags to `spec`.
void AddTrainFlags(FlagSpec& spec);
// Their usage text (one option per line).
extern const char* const kTrainFlagsUsage;

struct TrainSetup {
  std::filesystem::path model_path;
  std::string model_name;  // as the worker registers it with the registry (the file's stem)
  engine::GeneratorOptions generator;
  tasks::Task task;
  train::TrainOptions train;
};

// InvalidArgument naming the flag; NotFound for a model or data file that does not exist.
absl::StatusOr<TrainSetup> TrainSetupFromFlags(const Flags& flags);
// The parts of it: the task (--task or --data and its options) and the engine's options.
absl::StatusOr<tasks::Task> TaskFromFlags(const Flags& flags);
absl::StatusOr<engine::GeneratorOptions> GeneratorFromFlags(const Flags& flags, const std::filesystem::path& model_path);

// "step 12/100  reward -0.25  acc 0.38  loss 1.234  kl 0.0021  val 0.41  312 tok/s  ETA 4m10s"
void PrintStep(const train::StepReport& report, std::ostream& out);

}  // namespace t2::trainer
