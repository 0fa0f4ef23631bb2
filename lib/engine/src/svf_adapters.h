// The generator's SVF state: the decomposition of the loaded model, the experts and
// mixtures registered under names, and the two ways a batch uses them — merged (W' written
// into the weights, with an LRU of composed weight sets) and factored (per-row z through
// model::RowAdapters, no rebuild).
//
// Not thread-safe: the generator calls it under its model lock (ModelLock).
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/engine/generator.h"
#include "t2/model/llama.h"
#include "t2/svf/compose.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"

namespace t2::engine {

class SvfAdapters {
 public:
  static absl::StatusOr<std::unique_ptr<SvfAdapters>> Create(model::LlamaModel& model, const SvfOptions& options,
                                                             const std::filesystem::path& model_path);

  absl::Status AddExpert(const std::string& name, svf::Expert expert);
  absl::Status Remove(const std::string& name);
  bool Has(const std::string& name) const { return adapters_.count(name) != 0; }
  const svf::Expert* Find(const std::string& name) const;
  const svf::Decomposition& decomposition() const { return *decomposition_; }

  // Makes the model's weights those of `name` ("" = base): from the LRU of composed sets,
  // or composed now (and cached when it fits the budget).
  absl::Status UseMerged(const std::string& name);
  // Per-row factored adapters for a batch whose row b uses names[b] ("" = base). Puts the
  // base weights back first (the factored form applies on top of W).
  absl::StatusOr<model::RowAdapters> Factored(const std::vector<std::string>& names);

  // The policy: whether a batch with these adapter names runs factored (true) or as merged
  // groups (false). `one_pass`: the batch runs one forward only (a Score), with no decode
  // steps after it over which composing W' would pay off.
  bool RunFactored(const std::vector<std::string>& names, bool one_pass = false) const;

  int64_t merged_cache_bytes() const { return cached_bytes_; }
  size_t merged_cache_entries() const { return lru_.size(); }
  int64_t compositions() const { return compositions_; }  // W' sets composed so far

 private:
  struct Adapter {
    svf::Expert expert;
    // c · σ ⊙ z for every matrix the expert covers, float32 on the model's device.
    std::map<std::string, at::Tensor> scale;
  };
  struct Factors {
    at::Tensor u, vt, sigma;  // [n, r], [r, m], [r] float32 on the device
  };

  SvfAdapters(model::LlamaModel& model, const SvfOptions& options) : model_(&model), options_(options) {}
  void Evict(const std::string& name);

  model::LlamaModel* model_;
  SvfOptions options_;
  std::unique_ptr<svf::Decomposition> decomposition_;
  std::optional<svf::MergedWeights> merged_;
  std::map<std::string, Factors> factors_;
  std::map<std::string, Adapter> adapters_;
  std::string current_;         // whose weights the model holds now ("" = base)
  bool current_valid_ = true;   // false: unknown (a failed write, a replaced expert)
  // LRU of composed weight sets: most recent at the front.
  std::list<std::string> lru_;
  std::map<std::string, std::pair<std::map<std::string, at::Tensor>, int64_t>> cache_;
  int64_t cached_bytes_ = 0;
  int64_t compositions_ = 0;
};

}  // namespace t2::engine
