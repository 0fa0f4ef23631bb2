// SVF expert files: parsing, checking against a decomposition, writing.
#include "t2/svf/expert.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstring>
#include <ctime>
#include <iostream>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/formats/safetensors.h"

namespace t2::svf {
namespace {

namespace fs = std::filesystem;

// Every key is required: a file without one was not written by a conforming tool, and
// guessing a default (say, the normalisation) would silently change what W' is.
constexpr const char* kKeys[] = {"format_version", "base_model", "base_fingerprint", "targets",
                                 "normalization",  "task",       "metrics",          "created_at"};

absl::Status TensorError(const std::string& name, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("expert tensor '", name, "': ", AsAbsl(problem)));
}

absl::StatusOr<ExpertMetadata> ParseMetadata(const std::map<std::string, std::string>& meta) {
  for (const char* key : kKeys) {
    if (meta.find(key) == meta.end()) {
      return absl::InvalidArgumentError(absl::StrCat("expert metadata: missing key '", key, "'"));
    }
  }
  ExpertMetadata out;
  const std::string& version = meta.at("format_version");
  if (version != absl::StrCat(kExpertFormatVersion)) {
    return absl::InvalidArgumentError(absl::StrCat("expert metadata 'format_version': '", version,
                                                   "' is not supported (this build reads ",
                                                   kExpertFormatVersion, ")"));
  }
  out.format_version = kExpertFormatVersion;
  out.base_model = meta.at("base_model");
  out.base_fingerprint = meta.at("base_fingerprint");
  auto targets = ParseTargetSet(meta.at("targets"));
  if (!targets.ok()) return Annotate(targets.status(), "expert metadata");
  out.targets = *targets;
  auto normalization = ParseNormalization(meta.at("normalization"));
  if (!normalization.ok()) return Annotate(normalization.status(), "expert metadata");
  out.normalization = *normalization;
  out.task = meta.at("task");
  out.metrics_json = meta.at("metrics");
  auto metrics = nlohmann::json::parse(out.metrics_json, nullptr, /*allow_exceptions=*/false);
  if (metrics.is_discarded() || !metrics.is_object()) {
    return absl::InvalidArgumentError("expert metadata 'metrics': not a JSON object");
  }
  out.created_at = meta.at("created_at");
  return out;
}

absl::StatusOr<at::Tensor> ReadVector(const formats::SafetensorsTensor& t) {
  if (t.dtype != formats::SafetensorsDType::kF32) {
    return TensorError(t.name, absl::StrCat("dtype ", AsAbsl(formats::DTypeName(t.dtype)),
                                            ", expected F32"));
  }
  if (t.shape.size() != 1) {
    return TensorError(t.name, absl::StrCat(t.shape.size(), "-D, expected a 1-D vector"));
  }
  if (t.shape[0] < 1) return TensorError(t.name, "empty vector");
  at::Tensor z = at::empty({t.shape[0]}, at::kFloat);
  // memcpy, not from_blob: safetensors data offsets need not be float-aligned.
  std::memcpy(z.data_ptr(), t.data.data(), t.data.size());
  return z;
}

// Finite and >= 0, the only values for which c·σ⊙z stays a set of singular values.
absl::Status CheckValues(const std::string& name, const at::Tensor& z) {
  const at::Tensor cpu = z.to(at::kCPU, at::kFloat).contiguous();
  const float* p = cpu.data_ptr<float>();
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    if (!std::isfinite(p[i])) {
      return TensorError(name, absl::StrCat("value ", std::isnan(p[i]) ? "NaN" : "Inf",
                                            " at index ", i, "; values must be finite"));
    }
    if (p[i] < 0) {
      return TensorError(name, absl::StrCat("negative value ", p[i], " at index ", i,
                                            "; values must be >= 0"));
    }
  }
  return absl::OkStatus();
}

bool Covers(TargetSet decomposed, TargetSet wanted) {
  return decomposed == TargetSet::kAll || decomposed == wanted;
}

std::string Utc3339Now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

}  // namespace

std::string_view NormalizationName(Normalization n) {
  switch (n) {
    case Normalization::kNuclearNorm:
      return "nuclear";
    case Normalization::kNone:
      return "none";
  }
  return "unknown";
}

absl::StatusOr<Normalization> ParseNormalization(std::string_view name) {
  for (Normalization n : {Normalization::kNuclearNorm, Normalization::kNone}) {
    if (name == NormalizationName(n)) return n;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("normalization: '", AsAbsl(name), "' is not one of nuclear, none"));
}

absl::StatusOr<Expert> ReadExpert(const fs::path& path) {
  const std::string context = absl::StrCat("expert ", path.string());
  auto file = formats::SafetensorsFile::Open(path);
  if (!file.ok()) return Annotate(file.status(), context);
  Expert expert;
  auto metadata = ParseMetadata(file->metadata());
  if (!metadata.ok()) return Annotate(metadata.status(), context);
  expert.metadata = *std::move(metadata);
  if (file->tensors().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": holds no vectors"));
  }
  try {
    c10::NoGradGuard no_grad;
    for (const formats::SafetensorsTensor& t : file->tensors()) {
      if (!IsTarget(expert.metadata.targets, t.name)) {
        return Annotate(TensorError(t.name, absl::StrCat("not a matrix of target set '",
                                                         AsAbsl(TargetSetName(expert.metadata.targets)),
                                                         "'")),
                        context);
      }
      auto z = ReadVector(t);
      if (!z.ok()) return Annotate(z.status(), context);
      expert.z[t.name] = *std::move(z);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what_without_backtrace()));
  }
  return expert;
}

absl::Status ValidateExpert(const Expert& expert, const Decomposition& decomposition,
                            const ExpertLoadOptions& options) {
  const ExpertMetadata& meta = expert.metadata;
  if (meta.format_version != kExpertFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert format_version ", meta.format_version, " is not supported"));
  }
  if (!Covers(decomposition.targets(), meta.targets)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expert targets '", AsAbsl(TargetSetName(meta.targets)),
        "' are not covered by the decomposition, which holds '",
        AsAbsl(TargetSetName(decomposition.targets())), "'"));
  }
  std::set<std::string> wanted;
  for (const std::string& name : decomposition.names()) {
    if (IsTarget(meta.targets, name)) wanted.insert(name);
  }
  for (const auto& [name, z] : expert.z) {
    if (wanted.count(name) == 0) {
      return TensorError(name, absl::StrCat("not a target matrix of this model for targets '",
                                            AsAbsl(TargetSetName(meta.targets)), "'"));
    }
  }
  try {
    c10::NoGradGuard no_grad;
    for (const std::string& name : decomposition.names()) {
      if (wanted.count(name) == 0) continue;
      auto it = expert.z.find(name);
      if (it == expert.z.end()) return TensorError(name, "missing");
      const at::Tensor& z = it->second;
      if (!z.defined()) return TensorError(name, "undefined tensor");
      if (z.scalar_type() != at::kFloat) return TensorError(name, "not float32");
      if (z.dim() != 1) return TensorError(name, absl::StrCat(z.dim(), "-D, expected a 1-D vector"));
      const int64_t r = decomposition.Find(name)->rank();
      if (z.size(0) != r) {
        return TensorError(name, absl::StrCat("length ", z.size(0), ", expected ", r));
      }
      T2_RETURN_IF_ERROR(CheckValues(name, z));
      if (meta.normalization == Normalization::kNuclearNorm) {
        // c = Σσ / Σσz would divide by zero (all of z's weight on zero singular values).
        const at::Tensor& s = decomposition.Find(name)->s;
        const double weighted =
            (s.to(at::kCPU, at::kDouble) * z.to(at::kCPU, at::kDouble)).sum().item<double>();
        if (!(weighted > 0)) {
          return TensorError(name, "Σσz is 0, so the nuclear normalisation is undefined");
        }
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("validating expert: ", e.what_without_backtrace()));
  }
  if (meta.base_fingerprint != decomposition.base_fingerprint()) {
    const std::string message = absl::StrCat(
        "expert was made for base model '", meta.base_model, "' (fingerprint ",
        meta.base_fingerprint.substr(0, 16), "), not this one (fingerprint ",
        decomposition.base_fingerprint().substr(0, 16), ")");
    if (!options.allow_base_mismatch) {
      return absl::FailedPreconditionError(
          absl::StrCat(message, "; allow a base mismatch to apply it anyway"));
    }
    LogWarning(absl::StrCat(message, "; applying it anyway (allow_base_mismatch)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Expert> LoadExpert(const fs::path& path, const Decomposition& decomposition,
                                  const ExpertLoadOptions& options) {
  T2_ASSIGN_OR_RETURN(Expert expert, ReadExpert(path));
  T2_RETURN_IF_ERROR(
      Annotate(ValidateExpert(expert, decomposition, options), absl::StrCat("expert ", path.string())));
  return expert;
}

absl::Status WriteExpert(const Expert& expert, const fs::path& path) {
  const ExpertMetadata& meta = expert.metadata;
  auto metrics = nlohmann::json::parse(meta.metrics_json, nullptr, /*allow_exceptions=*/false);
  if (metrics.is_discarded() || !metrics.is_object()) {
    return absl::InvalidArgumentError("expert metadata 'metrics': not a JSON object");
  }
  if (expert.z.empty()) return absl::InvalidArgumentError("expert: holds no vectors");
  std::vector<at::Tensor> keep;  // contiguous CPU copies the views point into
  std::vector<formats::SafetensorsTensorView> views;
  keep.reserve(expert.z.size());
  try {
    c10::NoGradGuard no_grad;
    for (const auto& [name, z] : expert.z) {
      if (!IsTarget(meta.targets, name)) {
        return TensorError(name, absl::StrCat("not a matrix of target set '",
                                              AsAbsl(TargetSetName(meta.targets)), "'"));
      }
      if (!z.defined() || z.dim() != 1 || z.size(0) < 1) {
        return TensorError(name, "not a non-empty 1-D vector");
      }
      keep.push_back(z.detach().to(at::kCPU, at::kFloat).contiguous());
      const at::Tensor& cpu = keep.back();
      views.push_back({.name = name,
                       .dtype = formats::SafetensorsDType::kF32,
                       .shape = {cpu.size(0)},
                       .data = {static_cast<const uint8_t*>(cpu.data_ptr()),
                                static_cast<size_t>(cpu.nbytes())}});
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("writing expert ", path.string(), ": ",
                                            e.what_without_backtrace()));
  }
  const std::map<std::string, std::string> metadata = {
      {"format_version", absl::StrCat(meta.format_version)},
      {"base_model", meta.base_model},
      {"base_fingerprint", meta.base_fingerprint},
      {"targets", std::string(TargetSetName(meta.targets))},
      {"normalization", std::string(NormalizationName(meta.normalization))},
      {"task", meta.task},
      {"metrics", meta.metrics_json},
      {"created_at", meta.created_at.empty() ? Utc3339Now() : meta.created_at},
  };
  return Annotate(formats::WriteSafetensors(path, views, metadata),
                  absl::StrCat("writing expert ", path.string()));
}

Expert ConstantExpert(const Decomposition& decomposition, float value, const std::string& base_model) {
  Expert expert;
  expert.metadata.base_model = base_model;
  expert.metadata.base_fingerprint = decomposition.base_fingerprint();
  expert.metadata.targets = decomposition.targets();
  expert.metadata.task = "constant";
  for (const std::string& name : decomposition.names()) {
    expert.z[name] = at::full({decomposition.Find(name)->rank()}, value, at::kFloat);
  }
  return expert;
}

}  // namespace t2::svf
