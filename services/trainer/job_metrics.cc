#include "job_metrics.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "nlohmann/json.hpp"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "t2/metrics/push.h"

namespace t2::trainer {
namespace {

void Set(prometheus::Registry& registry, const std::string& name, const std::string& help, double value,
         const prometheus::Labels& labels = {}) {
  prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(labels).Set(value);
}

// The last line of the run's metrics.jsonl that is a training step (step 0 is the base
// model's validation), or an empty object.
nlohmann::json LastStep(const std::filesystem::path& metrics_file) {
  std::ifstream in(metrics_file);
  nlohmann::json last = nlohmann::json::object();
  for (std::string line; std::getline(in, line);) {
    auto step = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (step.is_object() && step.value("step", 0) > 0) last = std::move(step);
  }
  return last;
}

}  // namespace

absl::Status PushJobMetrics(const std::string& gateway, const std::string& task,
                            const absl::StatusOr<JobResult>& result) {
  prometheus::Registry registry;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  Set(registry, "t2_trainer_last_run_timestamp_seconds", "When the trainer's last run ended (Unix time)", now);
  Set(registry, "t2_trainer_last_run_failed", "1 when the trainer's last run failed", result.ok() ? 0 : 1);
  if (result.ok()) {
    Set(registry, "t2_trainer_last_success_timestamp_seconds",
        "When a trainer run last ended with a decision, published or kept (Unix time)", now);
    Set(registry, "t2_trainer_published", "1 when the last run published a new version",
        result->outcome == JobOutcome::kPublished ? 1 : 0);
    std::ifstream in(result->report);
    const nlohmann::json report = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (report.is_object()) {
      const nlohmann::json gate = report.value("gate", nlohmann::json::object());
      const nlohmann::json training = report.value("training", nlohmann::json::object());
      Set(registry, "t2_trainer_validation_accuracy", "Best validation accuracy of the last run",
          training.value("best_validation_accuracy", 0.0));
      Set(registry, "t2_trainer_training_seconds", "Training time of the last run", training.value("train_seconds", 0.0));
      const char* help = "Test accuracy the publish gate measured in the last run";
      Set(registry, "t2_trainer_test_accuracy", help, gate.value("candidate_accuracy", 0.0), {{"model", "candidate"}});
      Set(registry, "t2_trainer_test_accuracy", help, gate.value("current_accuracy", 0.0), {{"model", "current"}});
    }
    const nlohmann::json step = LastStep(result->report.parent_path() / "metrics.jsonl");
    Set(registry, "t2_trainer_reward_mean", "Mean reward of the last run's last training step",
        step.value("reward_mean", 0.0));
  }
  return metrics::PushToGateway(gateway, "t2-trainer", {{"task", task}}, registry);
}

}  // namespace t2::trainer
