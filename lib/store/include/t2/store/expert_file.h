// Checking SVF expert files without LibTorch, so the registry can refuse a bad blob before it
// becomes visible. Mirrors what t2::svf::ReadExpert / ValidateExpert accept (same metadata
// keys, F32 1-D vectors named after target matrices, finite values >= 0); what needs the
// singular values themselves (Σσz > 0 under nuclear normalisation) is approximated by "not
// all zero".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/store/types.h"

namespace t2::store {

// The expert format version this build accepts (t2::svf::kExpertFormatVersion).
inline constexpr int kExpertFormatVersion = 1;

struct ExpertFileSummary {
  std::string base_model;
  std::string base_fingerprint;
  std::string targets;        // "mlp" | "attn" | "all"
  std::string normalization;  // "nuclear" | "none"
  std::string task;
  std::string metrics_json;
  std::string created_at;
  std::map<std::string, int64_t> vector_lengths;  // HF matrix name -> length of z
};

// Parses the file and checks it on its own: metadata keys and values, every tensor F32, 1-D,
// non-empty, named as a matrix of the declared target set, values finite and >= 0.
// InvalidArgument naming the key or tensor.
absl::StatusOr<ExpertFileSummary> ReadExpertFile(const std::filesystem::path& path);

// Checks a parsed file against the base model with its fingerprint: the base's target set
// covers the file's, and the file has exactly one vector per target matrix of the base within
// the file's target set, each as long as that matrix's rank. InvalidArgument naming the tensor
// (FailedPrecondition if the target sets do not fit or the fingerprints differ).
absl::Status CheckAgainstBase(const ExpertFileSummary& file, const BaseModel& base);

// A base model definition on its own: fingerprint syntax, name non-empty, valid target set,
// at least one matrix, every matrix a target of that set with rank >= 1. Fields are named
// "base_model.<field>".
absl::Status CheckBaseModel(const BaseModel& base);

}  // namespace t2::store
