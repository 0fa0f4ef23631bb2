// t2-trainer: the trainer job. Trains an SVF expert for a task, judges it against the version
// in production on the test split, and publishes it (moving the task's alias) only when it is
// significantly better. Exit status: 0 published, 3 (--kept-exit-code) kept the current version, 1 failed
// (rerun to continue where it stopped), 2 bad usage. See job.h.
#include <climits>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "job.h"
#include "job_metrics.h"
#include "t2/common/command_line.h"
#include "t2/common/status.h"
#include "t2/rpc/security.h"
#include "train_setup.h"

namespace t2::trainer {
namespace {

// t2-trainer's flags: the job's own, then the training flags it shares with `t2 train`.
struct TrainerFlags {
  JobOptions options;  // the fields the flags set directly
  bool no_alias = false;
  int64_t test_size = 0;
  int64_t kept_exit = kExitKeptCurrent;
  std::string report, pushgateway;
  rpc::Security security;
  TrainFlags train;
};

// The flags about publishing: the registry, the names, the gate and what is reported.
void AddJobFlags(CommandLine& command_line, TrainerFlags& flags) {
  JobOptions& options = flags.options;
  command_line.add_option("--registry", options.registry, "the expert registry")
      ->type_name("HOST:PORT")
      ->required();
  command_line
      .add_option("--expert-name", options.expert_name,
                  "published as NAME@<next version> (default <task>-svf)")
      ->type_name("NAME");
  command_line
      .add_option("--alias", options.alias, "the alias moved to it (default: the task's name)")
      ->type_name("NAME");
  command_line.add_flag("--no-alias", flags.no_alias, "publish without moving the alias");
  command_line
      .add_option("--min-gain", options.gate.min_gain, "smallest test accuracy gain to publish")
      ->type_name("X")
      ->transform(NumberIn(0, 1));
  command_line
      .add_option("--max-p", options.gate.max_p,
                  "largest one-sided McNemar p-value to publish (above 0)")
      ->type_name("X")
      ->transform(NumberIn(0, 1));
  command_line
      .add_option("--test-size", flags.test_size,
                  "test examples the gate uses (0: the whole split)")
      ->type_name("N")
      ->transform(IntIn(0, INT32_MAX));
  command_line.add_option("--report", flags.report, "also write the JSON report here")
      ->type_name("FILE");
  command_line
      .add_option("--kept-exit-code", flags.kept_exit,
                  absl::StrCat("exit status when the gate keeps the current version (not ",
                               kExitFailed, " or ", kExitUsage,
                               "; 0 where a kept version must not look like a failed job, as a "
                               "Kubernetes CronJob's)"))
      ->type_name("N")
      ->transform(IntIn(0, 255));
  command_line
      .add_option(
          "--pushgateway", flags.pushgateway,
          "push the run's result to this Prometheus Pushgateway when it ends (job=\"t2-trainer\", "
          "task=...): last run and success times, failed or not, published or not, reward, "
          "validation "
          "and test accuracy; a push that fails is logged, the exit status stays")
      ->type_name("HOST:PORT");
}

// Every flag, in --help's order: the job's, the security flags, then the training flags.
void AddTrainerFlags(CommandLine& command_line, TrainerFlags& flags) {
  AddJobFlags(command_line, flags);
  rpc::AddSecurityFlags(command_line, flags.security, /*server=*/false);
  AddTrainFlags(command_line, flags.train);
  command_line.footer(
      absl::StrCat("The expert is judged against the version in production on the test split, and "
                   "published (moving\n"
                   "the task's alias) only when it is significantly better.\nExit status: ",
                   kExitPublished, " published, ", kExitKeptCurrent,
                   " (--kept-exit-code) kept the current version, ", kExitFailed,
                   " failed (rerun to continue\nwhere it stopped), ", kExitUsage, " bad usage."));
}

// The job's options from its flags; any error is bad usage.
absl::StatusOr<JobOptions> JobOptionsFromFlags(const TrainerFlags& flags) {
  JobOptions options = flags.options;
  if (options.registry.empty()) return absl::InvalidArgumentError("--registry is required");
  T2_RETURN_IF_ERROR(rpc::CheckSecurity(flags.security, /*server=*/false));
  T2_ASSIGN_OR_RETURN(options.registry_credentials, rpc::MakeChannelCredentials(flags.security));
  options.move_alias = !flags.no_alias;
  options.report = flags.report;
  if (flags.kept_exit == kExitFailed || flags.kept_exit == kExitUsage) {
    return absl::InvalidArgumentError(absl::StrCat("--kept-exit-code must be in [0, 255] and not ",
                                                   kExitFailed, " or ", kExitUsage,
                                                   " (failure, bad usage), got ", flags.kept_exit));
  }
  if (options.gate.max_p == 0) return absl::InvalidArgumentError("--max-p must be in (0, 1]");
  options.test_size = static_cast<int32_t>(flags.test_size);
  return options;
}

// Runs the job, pushes its metrics if asked, and reports the outcome; returns the exit status.
int RunAndReport(const TrainSetup& setup, const JobOptions& options, const TrainerFlags& flags) {
  auto result = RunJob(setup, options, std::cerr);
  if (!flags.pushgateway.empty()) {
    absl::Status pushed = PushJobMetrics(flags.pushgateway, setup.task.name, result);
    if (!pushed.ok()) std::cerr << "t2-trainer: metrics not pushed: " << pushed.message() << "\n";
  }
  if (!result.ok()) {
    std::cerr << "t2-trainer: failed: " << absl::StatusCodeToString(result.status().code()) << ": "
              << result.status().message() << "\n";
    return kExitFailed;
  }
  if (result->outcome == JobOutcome::kPublished) {
    std::cout << "published " << result->expert << " (report " << result->report.string() << ")\n";
    return kExitPublished;
  }
  std::cout << "kept the current version (report " << result->report.string() << ")\n";
  return static_cast<int>(flags.kept_exit);
}

}  // namespace
}  // namespace t2::trainer

int main(int argc, char** argv) {
  using namespace t2::trainer;
  t2::CommandLine command_line(
      "t2-trainer",
      "The trainer job: trains an SVF expert for a task and publishes it if it is better.");
  TrainerFlags flags;
  AddTrainerFlags(command_line, flags);
  if (auto exit_code = command_line.Parse(argc, argv)) return *exit_code;

  auto usage_error = [](const absl::Status& s) {
    std::cerr << "t2-trainer: " << s.message() << "\n";
    return kExitUsage;
  };
  auto setup = TrainSetupFromFlags(flags.train);
  if (!setup.ok()) {
    if (absl::IsInvalidArgument(setup.status())) return usage_error(setup.status());
    std::cerr << "t2-trainer: " << setup.status().message() << "\n";
    return kExitFailed;
  }
  auto options = JobOptionsFromFlags(flags);
  if (!options.ok()) return usage_error(options.status());
  return RunAndReport(*setup, *options, flags);
}
