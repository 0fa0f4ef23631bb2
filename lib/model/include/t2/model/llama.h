// A Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM2) on LibTorch.
//
// RMSNorm, rotary embeddings (HF's rotate-half layout, optional Llama-3 scaling), grouped-query
// attention over a KV cache, SwiGLU MLP, tied or separate output head, Qwen2's q/k/v biases.
// Computes in float32 on CPU and bfloat16/float16 on CUDA. The numerics follow HF
// transformers' LlamaForCausalLM so logits match it.
//
// Thread safety: Forward() on different KvCaches may not run concurrently (it shares scratch
// state in LibTorch's thread pool); callers serialise (the engine's scheduler does).
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "t2/model/config.h"
#include "t2/model/device_spec.h"
#include "t2/model/weights.h"

namespace t2::model {

struct LoadOptions {
  DeviceSpec device;                         // auto: CUDA if available
  ComputeDType dtype = ComputeDType::kAuto;  // auto: float32 on CPU, bfloat16 on CUDA
  absl::Status Validate() const;
};

// Keys and values of B sequences ("rows"), per layer [B, kv_heads, capacity, head_dim].
// Row b holds length(b) valid positions; Forward appends to it.
//
// Continuous batching keeps the live sequences in rows [0, n) of one cache: Slice(0, n) runs
// a decode step over exactly those rows, Slice(n, k) prefills k new arrivals next to them,
// and MoveRow fills the hole a finished sequence leaves. Slices share memory and lengths
// with the cache they come from.
class KvCache {
 public:
  KvCache() = default;
  int64_t rows() const { return rows_; }
  int64_t capacity() const { return capacity_; }
  int64_t length(int64_t row) const { return (*lengths_)[offset_ + row]; }
  // Forgets row's contents (for reuse by another sequence).
  void ResetRow(int64_t row) { (*lengths_)[offset_ + row] = 0; }
  // Rows [first, first + count) as a cache of their own, sharing this one's storage.
  KvCache Slice(int64_t first, int64_t count) const;
  // Row `to` takes row `from`'s keys, values and length; `from` is left empty.
  void MoveRow(int64_t from, int64_t to);
  // Row `to` gets a copy of row `from` (a shared prompt continued several ways).
  void CopyRow(int64_t from, int64_t to);
  // Rows [0, rows) of `source` (same model, capacity <= this one's) copied into this cache.
  void CopyRowsFrom(const KvCache& source, int64_t rows);
  // Row `to` gets the first `length` positions of `source`'s row `from` (same model; a
  // cached prompt prefix reused by a new sequence). `length` <= source.length(from) and this
  // cache's capacity.
  void CopyPrefixFrom(const KvCache& source, int64_t from, int64_t to, int64_t length);
  // Bytes of key/value memory this cache holds (its slices report the same storage).
  int64_t bytes() const;

 private:
  friend class LlamaModel;
  std::vector<at::Tensor> k_, v_;
  std::shared_ptr<std::vector<int64_t>> lengths_ = std::make_shared<std::vector<int64_t>>();
  int64_t offset_ = 0;  // first row of this view in *lengths_
  int64_t rows_ = 0;
  int64_t capacity_ = 0;
};

// SVF's factored form: lets the rows of one batch use different experts with no weight
// rebuild. For each listed matrix W = U diag(σ) Vᵀ, an adapted row b computes
//   y_b = ((x_b V) ⊙ scale_b) Uᵀ (+ the matrix's bias),   scale_b = c_b · σ ⊙ z_b,
// instead of x_b Wᵀ. Rows that are not adapted, and matrices not listed, use the weights.
struct FactoredMatrix {
  at::Tensor u;      // [n, r] float32, contiguous, on the model's device
  at::Tensor vt;     // [r, m] float32, contiguous (Vᵀ)
  at::Tensor scale;  // [B, r] float32 on the device; rows that are not adapted are ignored.
                     // An adapted row uses every listed matrix: where its expert leaves a
                     // matrix alone, its scale is σ (z = 1, c = 1).
};
struct RowAdapters {
  // By HF weight name; only q/k/v/o and gate/up/down projections can be listed.
  std::map<std::string, FactoredMatrix> matrices;
  std::vector<bool> adapted;  // one entry per batch row
};

class LlamaModel {
 public:
  // `path` is a .gguf file or an HF checkpoint folder (config.json + safetensors).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(const std::filesystem::path& path,
                                                          const LoadOptions& options);
  // From float32 CPU weights already in memory (validated against the config).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> FromWeights(const ModelConfig& config,
                                                                 WeightMap weights,
                                                                 const LoadOptions& options);

  const ModelConfig& config() const { return config_; }
  std::string device_name() const;
  std::string dtype_name() const;

  // HF-named weights, views into the model's own storage on its device and in its dtype
  // (q/k/v and gate/up are stored fused, so these are slices). Writing into them in place
  // changes what Forward computes; their shapes must not change.
  const WeightMap& parameters() const { return parameters_; }

  // A cache for `rows` sequences of up to `capacity` positions each.
  absl::StatusOr<KvCache> NewCache(int64_t rows, int64_t capacity) const;

  // Runs new tokens of each cache row through the model and appends their keys/values.
  //   tokens:      [B, T] int64 on CPU, B == cache.rows(); row b's first new_lengths[b] entries
  //                are real (right padding after them is ignored); they take positions
  //                cache.length(b) ... cache.length(b) + new_lengths[b] - 1.
  //   new_lengths: B entries in [0, T]; a row with 0 is left untouched.
  // Returns float32 CPU logits: [B, T, vocab] if all_positions, else [B, vocab] at each row's
  // last new token (rows with 0 new tokens get zeros).
  // adapters: optional per-row factored experts (see RowAdapters); InvalidArgument naming
  // the matrix if a name or shape does not fit.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& tokens, std::span<const int64_t> new_lengths,
                                     KvCache& cache, bool all_positions,
                                     const RowAdapters* adapters = nullptr);

  // The same forward pass for training SVF experts: autograd records it, and `weights`
  // stand in for the model's own projection matrices (HF names -> [n, m] tensors in the
  // model's dtype and on its device, e.g. W' composed from trainable z), so gradients flow
  // into whatever they were computed from. No KV cache: each of the B rows of `tokens`
  // ([B, T] int64 on CPU) is a whole sequence from position 0 with lengths[b] real tokens
  // (right padding ignored).
  // Returns [N, vocab] float32 logits on the model's device, only where a loss needs them:
  // for each row b and each t in [scored_from[b], lengths[b]), the logits that predict
  // token t (computed at position t - 1), row after row. 1 <= scored_from[b] <= lengths[b].
  // Tokens that every row begins with (a chat template's system prompt) before the first
  // scored position run once for the whole batch, not once per row: the result is the same.
  // Thread safety as Forward; the caller must not run it inside c10::InferenceMode.
  absl::StatusOr<at::Tensor> ForwardTrain(const at::Tensor& tokens, std::span<const int64_t> lengths,
                                          std::span<const int64_t> scored_from,
                                          const std::map<std::string, at::Tensor>& weights);

  ~LlamaModel();

 private:
  struct Layer;
  LlamaModel() = default;
  // Keys and values, one pair per layer ([1, kv_heads, P, head_dim], autograd recording), of
  // a beginning that every row of a training batch shares: computed once for all rows.
  struct SharedPrefix {
    std::vector<at::Tensor> k, v;
    int64_t length = 0;
  };
  // The decoder stack: hidden states [B, T, hidden] before the final norm. `cache` null: no
  // KV cache (training); every row starts at position 0 and attends to this call's tokens,
  // or, with `prefix`, starts at prefix->length and attends to the prefix's keys first.
  // `prefix_out` (a batch of one) receives this call's keys and values for later calls.
  // `weights` (may be null) replace projection matrices by HF name.
  at::Tensor ForwardImpl(const at::Tensor& tokens, std::span<const int64_t> new_lengths, KvCache* cache,
                         const RowAdapters* adapters, const std::map<std::string, at::Tensor>* weights,
                         const SharedPrefix* prefix = nullptr, SharedPrefix* prefix_out = nullptr);
  absl::Status ValidateTokens(const at::Tensor& tokens, std::span<const int64_t> new_lengths, int64_t rows) const;
  absl::Status ValidateAdapters(const RowAdapters& adapters, int64_t batch) const;
  absl::Status ValidateWeightOverrides(const std::map<std::string, at::Tensor>& weights) const;

  ModelConfig config_;
  at::TensorOptions options_;
  at::Tensor embed_;     // [vocab, hidden]
  at::Tensor norm_;      // [hidden]
  at::Tensor lm_head_;   // [vocab, hidden] (== embed_ when tied)
  at::Tensor inv_freq_;  // [head_dim / 2] float32 on device
  std::vector<Layer> layers_;
  WeightMap parameters_;
};

}  // namespace t2::model
