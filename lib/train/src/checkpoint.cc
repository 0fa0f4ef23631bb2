#include "checkpoint.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "t2/common/status.h"
#include "t2/formats/safetensors.h"

namespace t2::train {

DataOrder::DataOrder(uint64_t seed, size_t examples) : seed_(seed), permutation_(examples) { StartEpoch(0); }

void DataOrder::StartEpoch(uint64_t epoch) {
  epoch_ = epoch;
  position_ = 0;
  for (size_t i = 0; i < permutation_.size(); ++i) permutation_[i] = i;
  // Fisher-Yates with mt19937_64 written out: the same order with any standard library.
  std::mt19937_64 rng(seed_ * 1000003 + epoch);
  for (size_t i = permutation_.size(); i > 1; --i) std::swap(permutation_[i - 1], permutation_[rng() % i]);
}

std::vector<size_t> DataOrder::Next(size_t count) {
  std::vector<size_t> out;
  while (out.size() < count && !permutation_.empty()) {
    if (position_ == permutation_.size()) StartEpoch(epoch_ + 1);
    out.push_back(permutation_[position_++]);
  }
  return out;
}

std::string DataOrder::ToJson() const {
  return nlohmann::json{{"epoch", epoch_}, {"position", position_}, {"permutation", permutation_}}.dump();
}

absl::Status DataOrder::FromJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::DataLossError("checkpoint: data order is not JSON");
  try {
    auto permutation = j.at("permutation").get<std::vector<size_t>>();
    const auto position = j.at("position").get<size_t>();
    if (permutation.size() != permutation_.size() || position > permutation.size()) {
      return absl::DataLossError(absl::StrCat("checkpoint: data order over ", permutation.size(),
                                              " examples, the task has ", permutation_.size()));
    }
    std::vector<bool> seen(permutation.size(), false);
    for (size_t i : permutation) {
      if (i >= seen.size() || seen[i]) return absl::DataLossError("checkpoint: data order is not a permutation");
      seen[i] = true;
    }
    epoch_ = j.at("epoch").get<uint64_t>();
    position_ = position;
    permutation_ = std::move(permutation);
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint: data order: ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status WriteCheckpoint(const std::filesystem::path& path, const SvfPolicy& policy, const CheckpointState& state) {
  const std::map<std::string, at::Tensor> tensors = policy.State();
  std::vector<formats::SafetensorsTensorView> views;
  for (const auto& [name, t] : tensors) {
    views.push_back({.name = name,
                     .dtype = formats::SafetensorsDType::kF32,
                     .shape = t.sizes().vec(),
                     .data = std::span<const uint8_t>(static_cast<const uint8_t*>(t.data_ptr()), t.nbytes())});
  }
  nlohmann::json meta = {{"run_key", state.run_key},
                         {"step", state.step},
                         {"best_step", state.best_step},
                         {"best_validation_accuracy", state.best_validation_accuracy},
                         {"adam_steps", policy.adam_steps()},
                         {"created_at", state.created_at},
                         {"train_seconds", state.train_seconds}};
  return formats::WriteSafetensors(path, views,
                                   {{"t2_checkpoint", meta.dump()}, {"data_order", state.data_order_json}});
}

absl::StatusOr<std::optional<CheckpointState>> ReadCheckpoint(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<CheckpointState>();
  auto file = formats::SafetensorsFile::Open(path);
  if (!file.ok()) return absl::DataLossError(absl::StrCat("checkpoint ", path.string(), ": ", file.status().message()));
  const std::string context = absl::StrCat("checkpoint ", path.string());
  CheckpointState state;
  try {
    const auto& md = file->metadata();
    auto meta_it = md.find("t2_checkpoint");
    auto order_it = md.find("data_order");
    if (meta_it == md.end() || order_it == md.end()) return absl::DataLossError(absl::StrCat(context, ": no run state"));
    nlohmann::json meta = nlohmann::json::parse(meta_it->second);
    state.run_key = meta.at("run_key").get<std::string>();
    state.step = meta.at("step").get<int32_t>();
    state.best_step = meta.at("best_step").get<int32_t>();
    state.best_validation_accuracy = meta.at("best_validation_accuracy").get<double>();
    state.created_at = meta.at("created_at").get<std::string>();
    state.train_seconds = meta.at("train_seconds").get<double>();
    state.adam_steps = meta.at("adam_steps").get<int64_t>();
    state.data_order_json = order_it->second;
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(context, ": run state: ", e.what()));
  }
  try {
    for (const formats::SafetensorsTensor& t : file->tensors()) {
      at::Tensor values = at::empty(t.shape, at::kFloat);
      T2_RETURN_IF_ERROR(Annotate(
          formats::ReadAsFloat32(t, std::span<float>(values.data_ptr<float>(), static_cast<size_t>(values.numel()))),
          context));
      state.policy_state[t.name] = values;
    }
  } catch (const c10::Error& e) {
    return absl::DataLossError(absl::StrCat(context, ": ", e.what_without_backtrace()));
  }
  return std::optional<CheckpointState>(std::move(state));
}

}  // namespace t2::train
