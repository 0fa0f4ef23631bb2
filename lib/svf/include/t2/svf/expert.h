// SVF expert files: one float32 vector z per target matrix, named by the matrix's HF name,
// in a safetensors file whose "__metadata__" carries what the expert was made for.
//
// Metadata keys (all strings): format_version ("1"), base_model, base_fingerprint,
// targets ("mlp"|"attn"|"all"), normalization ("nuclear"|"none"), task, metrics (a JSON
// object), created_at (RFC 3339, UTC).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <ATen/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/targets.h"

namespace t2::svf {

inline constexpr int kExpertFormatVersion = 1;

// How W' is scaled after Σ is rescaled. kNuclearNorm: c = Σσ / Σσz, which keeps the sum of
// singular values and makes a constant z give back W (the reference's choice). kNone: c = 1.
enum class Normalization { kNuclearNorm, kNone };
std::string_view NormalizationName(Normalization n);  // "nuclear", "none"
absl::StatusOr<Normalization> ParseNormalization(std::string_view name);

struct ExpertMetadata {
  int format_version = kExpertFormatVersion;
  std::string base_model;        // e.g. "SmolLM2-135M-Instruct"
  std::string base_fingerprint;  // BaseFingerprint() of the model it was trained on
  TargetSet targets = TargetSet::kMlp;
  Normalization normalization = Normalization::kNuclearNorm;
  std::string task;              // e.g. "math"
  std::string metrics_json = "{}";
  std::string created_at;        // RFC 3339 UTC; WriteExpert fills it in when empty
};

struct Expert {
  ExpertMetadata metadata;
  std::map<std::string, at::Tensor> z;  // HF matrix name -> float32 CPU [r]
};

struct ExpertLoadOptions {
  // Accept an expert trained on another base model whose matrices have the same shapes
  // (cross-model transfer); the mismatch is logged. Off: a mismatch is FailedPrecondition.
  bool allow_base_mismatch = false;
};

// Parses an expert file without checking it against a model: format, metadata, dtype and
// rank of every tensor. InvalidArgument / DataLoss naming the tensor or key.
absl::StatusOr<Expert> ReadExpert(const std::filesystem::path& path);

// Checks an expert against a decomposition: its target set is covered, it has exactly one
// vector for each of its target matrices, each of length r of that matrix, every value
// finite and >= 0, and the base fingerprint matches (see ExpertLoadOptions). Errors name the
// tensor and the problem.
absl::Status ValidateExpert(const Expert& expert, const Decomposition& decomposition,
                            const ExpertLoadOptions& options = {});

// ReadExpert + ValidateExpert.
absl::StatusOr<Expert> LoadExpert(const std::filesystem::path& path, const Decomposition& decomposition,
                                  const ExpertLoadOptions& options = {});

// Writes atomically (see formats::WriteSafetensors). Fills metadata.created_at if empty.
absl::Status WriteExpert(const Expert& expert, const std::filesystem::path& path);

// An expert with z = value for every target matrix of `decomposition` (value 1: the base model).
Expert ConstantExpert(const Decomposition& decomposition, float value, const std::string& base_model);

}  // namespace t2::svf
