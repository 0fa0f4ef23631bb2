// The thin SVD of every target matrix, W = U diag(σ) Vᵀ, computed once per base model and
// target set, in float32, and cached on disk.
//
// Cache: one safetensors file per (base fingerprint, target set), written atomically
// (temporary file, fsync, rename). A computation that is interrupted resumes: every finished
// matrix is staged in its own atomically written file in a ".partial" folder beside the
// cache file, which is merged into the cache file and removed at the end. A cache or staged
// file that does not parse, lacks a matrix, has the wrong shapes or the wrong fingerprint is
// ignored (and rebuilt), never loaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/model/llama.h"
#include "t2/svf/targets.h"

namespace t2::svf {

// One matrix W [n, m] (HF layout: [out, in]), r = min(n, m). float32, on the model's device.
struct SvdFactors {
  at::Tensor u;  // [n, r]
  at::Tensor s;  // [r], descending, >= 0
  at::Tensor v;  // [m, r]  (V, not Vᵀ: W = u diag(s) vᵀ)
  int64_t rank() const { return s.size(0); }
};

// Progress of a decomposition, reported after each matrix.
struct DecomposeProgress {
  int64_t done = 0, total = 0;  // matrices
  int64_t cached = 0;           // of `done`, how many came from the cache or staging
  double elapsed_s = 0, eta_s = 0;
  std::string last{};           // name of the matrix just finished
};

struct DecomposeOptions {
  TargetSet targets = TargetSet::kMlp;
  // Folder for the cache file; empty: compute in memory only.
  std::filesystem::path cache_dir{};
  // Check ‖W − U diag(σ) Vᵀ‖_F / ‖W‖_F <= max_relative_error for every matrix after computing
  // or loading (costs one GEMM per matrix); a failure is an error.
  bool verify = false;
  double max_relative_error = 1e-5;
  std::function<void(const DecomposeProgress&)> on_progress{};  // optional
  absl::Status Validate() const;
};

// sha256 over the names, shapes and float32 values of every parameter of `model`, as it is
// now: call before any expert changes its weights. Hex, 64 characters; empty (with a
// warning on stderr) if LibTorch fails to read a weight.
std::string BaseFingerprint(const model::LlamaModel& model);

class Decomposition {
 public:
  // Loads the cache for (fingerprint, targets) from options.cache_dir when a valid one exists,
  // else computes the SVDs (resuming from staged matrices) and writes the cache.
  static absl::StatusOr<Decomposition> Build(const model::LlamaModel& model, const DecomposeOptions& options);

  TargetSet targets() const { return targets_; }
  const std::string& base_fingerprint() const { return fingerprint_; }
  // Target names, in TargetMatrixNames order.
  const std::vector<std::string>& names() const { return names_; }
  // nullptr if `name` is not a target of this decomposition.
  const SvdFactors* Find(const std::string& name) const;
  // The cache file this decomposition was loaded from or written to (empty if none).
  const std::filesystem::path& cache_path() const { return cache_path_; }
  bool loaded_from_cache() const { return loaded_from_cache_; }

  // FailedPrecondition naming the first matrix whose reconstruction error exceeds the bound.
  absl::Status Verify(const model::WeightMap& base, double max_relative_error) const;

  // Total bytes of the factors.
  int64_t bytes() const;

 private:
  TargetSet targets_ = TargetSet::kMlp;
  std::string fingerprint_;
  std::vector<std::string> names_;
  std::map<std::string, SvdFactors> factors_;
  std::filesystem::path cache_path_;
  bool loaded_from_cache_ = false;
};

// Cache file name for a fingerprint and target set: "<fingerprint[:16]>.<targets>.svd.safetensors".
std::filesystem::path CacheFileName(const std::string& fingerprint, TargetSet targets);

}  // namespace t2::svf
