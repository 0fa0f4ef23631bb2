// What t2-trainer --pushgateway pushes when a run ends, grouped by job="t2-trainer" and the
// task, so that an alert can ask "when did the math trainer last succeed?":
//   t2_trainer_last_run_timestamp_seconds      every run
//   t2_trainer_last_run_failed                 1 when the run failed, else 0
//   t2_trainer_last_success_timestamp_seconds  runs that published or kept the current version
//   t2_trainer_published                       1 when the run published a new version
//   t2_trainer_reward_mean                     the last training step's mean reward
//   t2_trainer_validation_accuracy             the best validation accuracy
//   t2_trainer_test_accuracy{model}            the gate's test accuracies: candidate, current
//   t2_trainer_training_seconds                the run's training time
// A failed run pushes only the first two, so the last success and its figures stay.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "job.h"

namespace t2::trainer {

absl::Status PushJobMetrics(const std::string& gateway, const std::string& task,
                            const absl::StatusOr<JobResult>& result);

}  // namespace t2::trainer
