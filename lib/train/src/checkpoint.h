// The trainer's checkpoint: p and Adam's state as float32 tensors, and the run's progress as
// JSON in the safetensors metadata, written atomically (temporary file, fsync, rename) so
// that a kill at any moment leaves the previous checkpoint or the new one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "absl/status/statusor.h"
#include "svf_policy.h"

namespace t2::train {

// The order training examples are drawn in: a seeded permutation per pass over the data
// (epoch), consumed batch by batch.
class DataOrder {
 public:
  DataOrder(uint64_t seed, size_t examples);
  // The next `count` example indices (crossing into a new epoch's permutation if needed).
  std::vector<size_t> Next(size_t count);
  std::string ToJson() const;
  // InvalidArgument (DataLoss) unless `json` describes a state of this order's size.
  absl::Status FromJson(const std::string& json);

 private:
  void StartEpoch(uint64_t epoch);
  uint64_t seed_;
  uint64_t epoch_ = 0;
  size_t position_ = 0;
  std::vector<size_t> permutation_;
};

struct CheckpointState {
  std::string run_key;           // the arguments that determine the result (see trainer.cc)
  int32_t step = 0;              // steps completed
  int32_t best_step = 0;
  double best_validation_accuracy = -1;
  std::string data_order_json;   // DataOrder::ToJson
  std::string created_at;        // of the run: every expert it writes carries it
  double train_seconds = 0;      // wall time of the completed steps, over all runs
  // Read back only (WriteCheckpoint takes them from the policy): SvfPolicy::State()'s
  // tensors and Adam's step count, for SvfPolicy::Restore.
  std::map<std::string, at::Tensor> policy_state;
  int64_t adam_steps = 0;
};

absl::Status WriteCheckpoint(const std::filesystem::path& path, const SvfPolicy& policy, const CheckpointState& state);
// nullopt when there is no checkpoint file; DataLoss for one that cannot be read (it is
// never silently replaced: the caller says what to do).
absl::StatusOr<std::optional<CheckpointState>> ReadCheckpoint(const std::filesystem::path& path);

}  // namespace t2::train
