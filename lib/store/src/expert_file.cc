#include "t2/store/expert_file.h"

#include <array>
#include <cmath>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "t2/common/status.h"
#include "t2/formats/safetensors.h"
#include "t2/svf/targets.h"

namespace t2::store {
namespace {

// Every key is required, as in svf::ReadExpert: guessing a default would change W'.
constexpr std::array<const char*, 8> kKeys = {"format_version", "base_model",    "base_fingerprint",
                                              "targets",        "normalization", "task",
                                              "metrics",        "created_at"};

bool IsValidTargetSet(std::string_view targets) { return svf::ParseTargetSet(targets).ok(); }

// True if `name` ("model.layers.3.mlp.up_proj.weight") is a matrix of target set `targets`.
bool IsTargetMatrix(std::string_view targets, std::string_view name) {
  auto set = svf::ParseTargetSet(targets);
  return set.ok() && svf::IsTarget(*set, name);
}

bool Covers(std::string_view outer, std::string_view inner) {
  return outer == "all" || outer == inner;
}

absl::Status TensorError(const std::string& name, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", AsAbsl(problem)));
}

absl::Status MetadataError(std::string_view key, std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("metadata '", AsAbsl(key), "': ", AsAbsl(problem)));
}

absl::StatusOr<ExpertFileSummary> ParseMetadata(const std::map<std::string, std::string>& meta) {
  for (const char* key : kKeys) {
    if (meta.find(key) == meta.end()) return MetadataError(key, "missing");
  }
  if (meta.at("format_version") != absl::StrCat(kExpertFormatVersion)) {
    return MetadataError(
        "format_version",
        absl::StrCat("'", meta.at("format_version"), "' is not supported (this registry accepts ",
                     kExpertFormatVersion, ")"));
  }
  ExpertFileSummary out;
  out.base_model = meta.at("base_model");
  out.base_fingerprint = meta.at("base_fingerprint");
  if (out.base_fingerprint.empty()) return MetadataError("base_fingerprint", "empty");
  out.targets = meta.at("targets");
  if (!IsValidTargetSet(out.targets)) {
    return MetadataError("targets",
                         absl::StrCat("'", out.targets, "' is not one of mlp, attn, all"));
  }
  out.normalization = meta.at("normalization");
  if (out.normalization != "nuclear" && out.normalization != "none") {
    return MetadataError("normalization",
                         absl::StrCat("'", out.normalization, "' is not one of nuclear, none"));
  }
  out.task = meta.at("task");
  out.metrics_json = meta.at("metrics");
  auto metrics = nlohmann::json::parse(out.metrics_json, nullptr, /*allow_exceptions=*/false);
  if (metrics.is_discarded() || !metrics.is_object()) {
    return MetadataError("metrics", "not a JSON object");
  }
  out.created_at = meta.at("created_at");
  return out;
}

absl::Status CheckVector(const formats::SafetensorsTensor& t, bool nuclear) {
  if (t.dtype != formats::SafetensorsDType::kF32) {
    return TensorError(
        t.name, absl::StrCat("dtype ", AsAbsl(formats::DTypeName(t.dtype)), ", expected F32"));
  }
  if (t.shape.size() != 1) {
    return TensorError(t.name, absl::StrCat(t.shape.size(), "-D, expected a 1-D vector"));
  }
  if (t.shape[0] < 1) return TensorError(t.name, "empty vector");
  bool any_positive = false;
  for (int64_t i = 0; i < t.shape[0]; ++i) {
    float v;
    // memcpy: safetensors data offsets need not be float-aligned.
    std::memcpy(&v, t.data.data() + i * sizeof(float), sizeof(float));
    if (!std::isfinite(v)) {
      return TensorError(t.name, absl::StrCat("value ", std::isnan(v) ? "NaN" : "Inf", " at index ",
                                              i, "; values must be finite"));
    }
    if (v < 0) {
      return TensorError(
          t.name, absl::StrCat("negative value ", v, " at index ", i, "; values must be >= 0"));
    }
    any_positive = any_positive || v > 0;
  }
  if (nuclear && !any_positive) {
    return TensorError(t.name, "all zero, so the nuclear normalisation is undefined");
  }
  return absl::OkStatus();
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<ExpertFileSummary> ReadExpertFile(const std::filesystem::path& path) {
  T2_ASSIGN_OR_RETURN(formats::SafetensorsFile file, formats::SafetensorsFile::Open(path));
  T2_ASSIGN_OR_RETURN(ExpertFileSummary summary, ParseMetadata(file.metadata()));
  if (file.tensors().empty()) return absl::InvalidArgumentError("holds no vectors");
  const bool nuclear = summary.normalization == "nuclear";
  for (const formats::SafetensorsTensor& t : file.tensors()) {
    if (!IsTargetMatrix(summary.targets, t.name)) {
      return TensorError(t.name,
                         absl::StrCat("not a matrix of target set '", summary.targets, "'"));
    }
    T2_RETURN_IF_ERROR(CheckVector(t, nuclear));
    summary.vector_lengths[t.name] = t.shape[0];
  }
  return summary;
}

absl::Status CheckAgainstBase(const ExpertFileSummary& file, const BaseModel& base) {
  if (file.base_fingerprint != base.fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        "metadata 'base_fingerprint': ", file.base_fingerprint,
        " is not the fingerprint of base model '", base.name, "' (", base.fingerprint, ")"));
  }
  if (!Covers(base.targets, file.targets)) {
    return absl::FailedPreconditionError(
        absl::StrCat("metadata 'targets': '", file.targets, "' is not covered by base model '",
                     base.name, "', registered with targets '", base.targets, "'"));
  }
  std::set<std::string> wanted;
  for (const auto& [name, rank] : base.target_ranks) {
    if (IsTargetMatrix(file.targets, name)) wanted.insert(name);
  }
  for (const auto& [name, length] : file.vector_lengths) {
    if (wanted.count(name) == 0) {
      return TensorError(name, absl::StrCat("not a target matrix of base model '", base.name,
                                            "' for targets '", file.targets, "'"));
    }
  }
  for (const std::string& name : wanted) {
    auto it = file.vector_lengths.find(name);
    if (it == file.vector_lengths.end()) return TensorError(name, "missing");
    const int64_t rank = base.target_ranks.at(name);
    if (it->second != rank) {
      return TensorError(name, absl::StrCat("length ", it->second, ", expected rank ", rank,
                                            " of base model '", base.name, "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckBaseModel(const BaseModel& base) {
  if (base.fingerprint.size() < 16 || base.fingerprint.size() > 128 ||
      !IsLowerHex(base.fingerprint)) {
    return absl::InvalidArgumentError(absl::StrCat("base_model.fingerprint: '",
                                                   base.fingerprint.substr(0, 130),
                                                   "' is not 16 to 128 lowercase hex characters"));
  }
  if (base.name.empty()) return absl::InvalidArgumentError("base_model.name: empty");
  if (base.name.size() > 256) {
    return absl::InvalidArgumentError("base_model.name: longer than 256 bytes");
  }
  if (!IsValidTargetSet(base.targets)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "base_model.targets: '", base.targets.substr(0, 64), "' is not one of mlp, attn, all"));
  }
  if (base.target_ranks.empty()) {
    return absl::InvalidArgumentError("base_model.target_ranks: empty");
  }
  for (const auto& [name, rank] : base.target_ranks) {
    if (!IsTargetMatrix(base.targets, name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("base_model.target_ranks['", name.substr(0, 128),
                       "']: not a matrix of target set '", base.targets, "'"));
    }
    if (rank < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("base_model.target_ranks['", name, "']: rank ", rank, " is not >= 1"));
    }
  }
  return absl::OkStatus();
}

}  // namespace t2::store
