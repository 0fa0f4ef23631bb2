// t2-trainer: the trainer job. Trains an SVF expert for a task, judges it against the version
// in production on the test split, and publishes it (moving the task's alias) only when it is
// significantly better. Exit status: 0 published, 3 (--kept-exit-code) kept the current version, 1 failed
// (rerun to continue where it stopped), 2 bad usage. See job.h.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "job.h"
#include "job_metrics.h"
#include "t2/common/flags.h"
#include "t2/common/status.h"
#include "t2/rpc/security.h"
#include "train_setup.h"

namespace {

constexpr const char* kUsage = R"(usage: t2-trainer --registry HOST:PORT --task NAME|--data FILE --work-dir DIR [options]
job:
  --registry HOST:PORT         the expert registry (required)
  --expert-name NAME           published as NAME@<next version> (default <task>-svf)
  --alias NAME                 the alias moved to it (default: the task's name)
  --no-alias                   publish without moving the alias
  --min-gain X                 smallest test accuracy gain to publish (default 0.01)
  --max-p X                    largest one-sided McNemar p-value to publish (default 0.05)
  --test-size N                test examples the gate uses (default 0: the whole split)
  --report FILE                also write the JSON report here
  --kept-exit-code N           exit status when the gate keeps the current version (default 3;
                               0 where a kept version must not look like a failed job, as a
                               Kubernetes CronJob's)
  --pushgateway HOST:PORT      push the run's result to this Prometheus Pushgateway when it
                               ends (job="t2-trainer", task=...): last run and success times,
                               failed or not, published or not, reward, validation and test
                               accuracy; a push that fails is logged, the exit status stays
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace t2::trainer;
  std::vector<std::string> args(argv + 1, argv + argc);
  t2::FlagSpec spec{.value_flags = {"registry", "expert-name", "alias", "min-gain", "max-p", "test-size", "report",
                                    "pushgateway", "kept-exit-code"},
                    .bool_flags = {"no-alias", "help"}};
  AddTrainFlags(spec);
  t2::rpc::AddSecurityFlags(spec);
  auto flags = t2::Flags::Parse(args, spec);
  if (!flags.ok()) {
    std::cerr << "t2-trainer: " << flags.status().message() << "\n"
              << kUsage << t2::rpc::kClientSecurityUsage << kTrainFlagsUsage;
    return kExitUsage;
  }
  if (flags->Has("help")) {
    std::cout << kUsage << t2::rpc::kClientSecurityUsage << kTrainFlagsUsage;
    return 0;
  }
  auto usage_error = [](const absl::Status& s) {
    std::cerr << "t2-trainer: " << s.message() << "\n";
    return kExitUsage;
  };
  auto setup = TrainSetupFromFlags(*flags);
  if (!setup.ok()) {
    if (absl::IsInvalidArgument(setup.status())) return usage_error(setup.status());
    std::cerr << "t2-trainer: " << setup.status().message() << "\n";
    return kExitFailed;
  }
  JobOptions options;
  options.registry = flags->Get("registry", "");
  if (options.registry.empty()) return usage_error(absl::InvalidArgumentError("--registry is required"));
  auto security = t2::rpc::SecurityFromFlags(*flags, /*server=*/false);
  if (!security.ok()) return usage_error(security.status());
  auto credentials = t2::rpc::MakeChannelCredentials(*security);
  if (!credentials.ok()) return usage_error(credentials.status());
  options.registry_credentials = *credentials;
  options.expert_name = flags->Get("expert-name", "");
  options.alias = flags->Get("alias", "");
  options.move_alias = !flags->Has("no-alias");
  options.report = flags->Get("report", "");
  auto min_gain = flags->GetDouble("min-gain", options.gate.min_gain);
  auto max_p = flags->GetDouble("max-p", options.gate.max_p);
  auto test_size = flags->GetInt("test-size", 0);
  auto kept_exit = flags->GetInt("kept-exit-code", kExitKeptCurrent);
  for (const absl::Status& s : {min_gain.status(), max_p.status(), test_size.status(), kept_exit.status()}) {
    if (!s.ok()) return usage_error(s);
  }
  if (*kept_exit < 0 || *kept_exit > 255 || *kept_exit == kExitFailed || *kept_exit == kExitUsage) {
    return usage_error(absl::InvalidArgumentError(absl::StrCat(
        "--kept-exit-code must be in [0, 255] and not ", kExitFailed, " or ", kExitUsage, " (failure, bad usage), got ",
        *kept_exit)));
  }
  options.gate.min_gain = *min_gain;
  options.gate.max_p = *max_p;
  if (!(*min_gain >= 0 && *min_gain <= 1)) return usage_error(absl::InvalidArgumentError("--min-gain must be in [0, 1]"));
  if (!(*max_p > 0 && *max_p <= 1)) return usage_error(absl::InvalidArgumentError("--max-p must be in (0, 1]"));
  if (*test_size < 0 || *test_size > INT32_MAX) return usage_error(absl::InvalidArgumentError("--test-size must be >= 0"));
  options.test_size = static_cast<int32_t>(*test_size);

  auto result = RunJob(*setup, options, std::cerr);
  if (flags->Has("pushgateway")) {
    absl::Status pushed = PushJobMetrics(flags->Get("pushgateway", ""), setup->task.name, result);
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
  return static_cast<int>(*kept_exit);
}
