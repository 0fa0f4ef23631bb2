// The trainer job (what a Kubernetes CronJob runs): train -> evaluate -> gate -> publish ->
// move the alias, then exit. Every stage leaves its result in the run's folder, so a job
// killed anywhere and started again with the same arguments continues where it was and
// publishes nothing twice:
//   - training resumes from its checkpoint (lib/train);
//   - gate.json keeps both test evaluations and the decision;
//   - publishing looks for a version with the same bytes before it makes a new one; the
//     published file's bytes depend only on the run, so a repeat finds its version;
//   - setting an alias to where it already points changes nothing.
// For the tests, T2_TRAINER_CRASH_AT=published kills the job right after the registry
// accepted the new version, before the alias moves (t2/common/crash_point.h).
#pragma once

#include <grpcpp/security/credentials.h>

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "t2/train/gate.h"
#include "train_setup.h"

namespace t2::trainer {

struct JobOptions {
  std::string registry;     // HOST:PORT, required
  // How to reach it (rpc/security.h: TLS and the trainer's certificate or token).
  std::shared_ptr<grpc::ChannelCredentials> registry_credentials;
  std::string expert_name;  // "" -> "<task>-svf"
  std::string alias;        // "" -> the task's name (math, code, reasoning, cls)
  bool move_alias = true;
  train::GateOptions gate;
  int32_t test_size = 0;    // test examples the gate uses (0: the whole split)
  std::filesystem::path report;  // also written here ("" -> only <run dir>/report.json)
};

// Exit statuses of t2-trainer (and of `t2 up --experts` per expert).
inline constexpr int kExitPublished = 0;    // a new version is published (or was, by this run)
inline constexpr int kExitFailed = 1;       // an error: nothing half-done, rerun to continue
inline constexpr int kExitUsage = 2;
inline constexpr int kExitKeptCurrent = 3;  // the gate kept the current version

enum class JobOutcome { kPublished, kKeptCurrent };

struct JobResult {
  JobOutcome outcome = JobOutcome::kKeptCurrent;
  std::string expert;        // name@version when published
  std::filesystem::path report;
};

// Runs the whole job; progress goes to `log`. An error (the registry unreachable or refusing
// included) leaves the run folder as it was after the last finished stage.
absl::StatusOr<JobResult> RunJob(const TrainSetup& setup, const JobOptions& options, std::ostream& log);

}  // namespace t2::trainer
