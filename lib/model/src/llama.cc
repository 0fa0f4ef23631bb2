#include "t2/model/llama.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "t2/formats/gguf.h"
#include "t2/model/device.h"
#include "t2/model/cpu_linear.h"
#include "factored_linear.h"

namespace t2::model {

// A shared beginning shorter than this is computed per row: the prefix pass costs a launch of
// every layer's kernels, which a few tokens do not pay for.
constexpr int64_t kMinSharedPrefix = 4;

struct LlamaModel::Layer {
  at::Tensor input_norm, post_norm;
  at::Tensor qkv, qkv_bias;  // [q + 2 kv, hidden], bias undefined unless attention_bias
  at::Tensor o;              // [hidden, q]
  at::Tensor gate_up;        // [2 ff, hidden]
  at::Tensor down;           // [hidden, ff]
};

LlamaModel::~LlamaModel() = default;

absl::Status LoadOptions::Validate() const { return ResolveDevice(device, dtype).status(); }

namespace {

// HF's base inverse frequencies, in float32 exactly as LlamaRotaryEmbedding computes them,
// then Llama-3 scaling (from config.json) or llama.cpp's stored per-frequency divisors.
at::Tensor InverseFrequencies(const ModelConfig& c, const WeightMap& weights) {
  auto exponents = at::arange(0, c.head_dim, 2, at::kLong).to(at::kFloat) / static_cast<float>(c.head_dim);
  at::Tensor inv_freq = 1.0 / at::pow(c.rope_theta, exponents);
  if (c.rope_scaling.enabled) {
    const auto& s = c.rope_scaling;
    double old_len = static_cast<double>(s.original_max_position_embeddings);
    double low_wavelen = old_len / s.low_freq_factor;
    double high_wavelen = old_len / s.high_freq_factor;
    auto wavelen = 2 * std::numbers::pi / inv_freq;
    auto scaled = at::where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq);
    auto smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    auto medium = at::logical_not(wavelen < high_wavelen) * at::logical_not(wavelen > low_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  }
  if (auto it = weights.find(kRopeFreqFactors); it != weights.end()) {
    inv_freq = inv_freq / it->second;
  }
  return inv_freq.to(at::kFloat);
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // HF computes the statistics in float32 whatever the activation dtype.
  auto x32 = x.to(at::kFloat);
  auto normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

// The matrices SVF may adapt: attention and MLP projections of a layer.
bool IsProjection(const std::string& name) {
  if (name.rfind("model.layers.", 0) != 0) return false;
  for (const char* p : {".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
                        ".self_attn.o_proj.weight", ".mlp.gate_proj.weight", ".mlp.up_proj.weight",
                        ".mlp.down_proj.weight"}) {
    std::string_view suffix(p);
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

at::Tensor RotateHalf(const at::Tensor& x) {
  auto half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(const std::filesystem::path& path,
                                                             const LoadOptions& options) {
  T2_RETURN_IF_ERROR(options.Validate());
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    T2_ASSIGN_OR_RETURN(auto config, ConfigFromHfDir(path));
    T2_ASSIGN_OR_RETURN(auto weights, LoadHfWeights(path, config));
    return FromWeights(config, std::move(weights), options);
  }
  T2_ASSIGN_OR_RETURN(auto file, formats::GgufFile::Open(path));
  T2_ASSIGN_OR_RETURN(auto config, ConfigFromGguf(file));
  T2_ASSIGN_OR_RETURN(auto weights, LoadGgufWeights(file, config));
  return FromWeights(config, std::move(weights), options);
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::FromWeights(const ModelConfig& config,
                                                                    WeightMap weights,
                                                                    const LoadOptions& options) {
  T2_RETURN_IF_ERROR(config.Validate());
  T2_RETURN_IF_ERROR(ValidateWeights(weights, config));
  T2_ASSIGN_OR_RETURN(auto placement, ResolveDevice(options.device, options.dtype));
  std::unique_ptr<LlamaModel> m(new LlamaModel());
  m->config_ = config;
  m->options_ = at::TensorOptions().device(placement.device).dtype(placement.dtype);
  try {
    // Not under InferenceMode: inference tensors cannot be written in place outside it, and
    // SVF rewrites weights in place. Plain tensors without grad cost nothing extra here.
    auto put = [&](const at::Tensor& t) { return t.to(m->options_).contiguous(); };
    auto take = [&](const std::string& name) { return weights.at(name); };
    m->embed_ = put(take("model.embed_tokens.weight"));
    m->norm_ = put(take("model.norm.weight"));
    m->lm_head_ = config.tie_word_embeddings ? m->embed_ : put(take("lm_head.weight"));
    m->inv_freq_ = InverseFrequencies(config, weights).to(placement.device);
    m->parameters_["model.embed_tokens.weight"] = m->embed_;
    m->parameters_["model.norm.weight"] = m->norm_;
    if (!config.tie_word_embeddings) m->parameters_["lm_head.weight"] = m->lm_head_;

    const int64_t q = config.num_attention_heads * config.head_dim;
    const int64_t kv = config.num_key_value_heads * config.head_dim;
    const int64_t ff = config.intermediate_size;
    m->layers_.resize(config.num_hidden_layers);
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      auto p = absl::StrCat("model.layers.", i, ".");
      Layer& l = m->layers_[i];
      l.input_norm = put(take(p + "input_layernorm.weight"));
      l.post_norm = put(take(p + "post_attention_layernorm.weight"));
      // Fused storage: one GEMM for q/k/v and one for gate/up; HF names map to row slices.
      l.qkv = put(at::cat({take(p + "self_attn.q_proj.weight"), take(p + "self_attn.k_proj.weight"),
                           take(p + "self_attn.v_proj.weight")}));
      l.o = put(take(p + "self_attn.o_proj.weight"));
      l.gate_up = put(at::cat({take(p + "mlp.gate_proj.weight"), take(p + "mlp.up_proj.weight")}));
      l.down = put(take(p + "mlp.down_proj.weight"));
      auto& params = m->parameters_;
      params[p + "input_layernorm.weight"] = l.input_norm;
      params[p + "post_attention_layernorm.weight"] = l.post_norm;
      params[p + "self_attn.q_proj.weight"] = l.qkv.narrow(0, 0, q);
      params[p + "self_attn.k_proj.weight"] = l.qkv.narrow(0, q, kv);
      params[p + "self_attn.v_proj.weight"] = l.qkv.narrow(0, q + kv, kv);
      params[p + "self_attn.o_proj.weight"] = l.o;
      params[p + "mlp.gate_proj.weight"] = l.gate_up.narrow(0, 0, ff);
      params[p + "mlp.up_proj.weight"] = l.gate_up.narrow(0, ff, ff);
      params[p + "mlp.down_proj.weight"] = l.down;
      if (config.attention_bias) {
        l.qkv_bias = put(at::cat({take(p + "self_attn.q_proj.bias"), take(p + "self_attn.k_proj.bias"),
                                  take(p + "self_attn.v_proj.bias")}));
        params[p + "self_attn.q_proj.bias"] = l.qkv_bias.narrow(0, 0, q);
        params[p + "self_attn.k_proj.bias"] = l.qkv_bias.narrow(0, q, kv);
        params[p + "self_attn.v_proj.bias"] = l.qkv_bias.narrow(0, q + kv, kv);
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("model: placing weights: ", e.what_without_backtrace()));
  }
  return m;
}

std::string LlamaModel::device_name() const { return options_.device().str(); }
std::string LlamaModel::dtype_name() const { return std::string(c10::toString(options_.dtype().toScalarType())); }

KvCache KvCache::Slice(int64_t first, int64_t count) const {
  KvCache view;
  for (size_t i = 0; i < k_.size(); ++i) {
    view.k_.push_back(k_[i].narrow(0, first, count));
    view.v_.push_back(v_[i].narrow(0, first, count));
  }
  view.lengths_ = lengths_;
  view.offset_ = offset_ + first;
  view.rows_ = count;
  view.capacity_ = capacity_;
  return view;
}

void KvCache::CopyRow(int64_t from, int64_t to) {
  if (from == to) return;
  c10::InferenceMode guard;
  const int64_t used = length(from);
  for (size_t i = 0; i < k_.size(); ++i) {
    k_[i][to].narrow(1, 0, used).copy_(k_[i][from].narrow(1, 0, used));
    v_[i][to].narrow(1, 0, used).copy_(v_[i][from].narrow(1, 0, used));
  }
  (*lengths_)[offset_ + to] = used;
}

void KvCache::MoveRow(int64_t from, int64_t to) {
  if (from == to) return;
  CopyRow(from, to);
  (*lengths_)[offset_ + from] = 0;
}

void KvCache::CopyRowsFrom(const KvCache& source, int64_t rows) {
  c10::InferenceMode guard;
  int64_t used = 0;
  for (int64_t b = 0; b < rows; ++b) used = std::max(used, source.length(b));
  for (size_t i = 0; i < k_.size(); ++i) {
    k_[i].narrow(0, 0, rows).narrow(2, 0, used).copy_(source.k_[i].narrow(0, 0, rows).narrow(2, 0, used));
    v_[i].narrow(0, 0, rows).narrow(2, 0, used).copy_(source.v_[i].narrow(0, 0, rows).narrow(2, 0, used));
  }
  for (int64_t b = 0; b < rows; ++b) (*lengths_)[offset_ + b] = source.length(b);
}

void KvCache::CopyPrefixFrom(const KvCache& source, int64_t from, int64_t to, int64_t length) {
  c10::InferenceMode guard;
  for (size_t i = 0; i < k_.size(); ++i) {
    k_[i][to].narrow(1, 0, length).copy_(source.k_[i][from].narrow(1, 0, length));
    v_[i][to].narrow(1, 0, length).copy_(source.v_[i][from].narrow(1, 0, length));
  }
  (*lengths_)[offset_ + to] = length;
}

int64_t KvCache::bytes() const {
  int64_t total = 0;
  for (size_t i = 0; i < k_.size(); ++i) total += (k_[i].numel() + v_[i].numel()) * k_[i].element_size();
  return total;
}

absl::StatusOr<KvCache> LlamaModel::NewCache(int64_t rows, int64_t capacity) const {
  if (rows <= 0 || capacity <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv cache: rows (", rows, ") and capacity (",
                                                   capacity, ") must be > 0"));
  }
  if (capacity > config_.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv cache: capacity ", capacity, " exceeds the model's context of ",
                     config_.max_position_embeddings));
  }
  if (config_.sliding_window > 0 && capacity > config_.sliding_window) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv cache: capacity ", capacity, " exceeds the sliding window of ",
                     config_.sliding_window, " (sliding-window attention is not implemented)"));
  }
  KvCache cache;
  try {
    c10::InferenceMode guard;
    for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
      cache.k_.push_back(at::zeros({rows, config_.num_key_value_heads, capacity, config_.head_dim}, options_));
      cache.v_.push_back(at::zeros({rows, config_.num_key_value_heads, capacity, config_.head_dim}, options_));
    }
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(absl::StrCat("kv cache: ", e.what_without_backtrace()));
  }
  cache.lengths_->assign(rows, 0);
  cache.rows_ = rows;
  cache.capacity_ = capacity;
  return cache;
}

absl::Status LlamaModel::ValidateTokens(const at::Tensor& tokens, std::span<const int64_t> new_lengths,
                                        int64_t rows) const {
  if (tokens.dim() != 2 || tokens.scalar_type() != at::kLong || !tokens.device().is_cpu()) {
    return absl::InvalidArgumentError("forward: tokens must be a [B, T] int64 CPU tensor");
  }
  const int64_t batch = tokens.size(0), steps = tokens.size(1);
  if (batch != rows || static_cast<int64_t>(new_lengths.size()) != batch) {
    return absl::InvalidArgumentError(absl::StrCat("forward: batch ", batch, ", cache rows ", rows,
                                                   ", new_lengths ", new_lengths.size()));
  }
  for (int64_t b = 0; b < batch; ++b) {
    if (new_lengths[b] < 0 || new_lengths[b] > steps) {
      return absl::InvalidArgumentError(absl::StrCat("forward: new_lengths[", b, "] = ", new_lengths[b],
                                                     " outside [0, ", steps, "]"));
    }
  }
  const at::Tensor ids = tokens.contiguous();
  const auto* data = ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (data[i] < 0 || data[i] >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("forward: token id ", data[i], " outside vocabulary of ",
                                                     config_.vocab_size));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> LlamaModel::Forward(const at::Tensor& tokens,
                                               std::span<const int64_t> new_lengths, KvCache& cache,
                                               bool all_positions, const RowAdapters* adapters) {
  T2_RETURN_IF_ERROR(ValidateTokens(tokens, new_lengths, cache.rows()));
  const int64_t batch = tokens.size(0), steps = tokens.size(1);
  for (int64_t b = 0; b < batch; ++b) {
    if (cache.length(b) + steps > cache.capacity()) {
      return absl::OutOfRangeError(absl::StrCat("forward: row ", b, " needs ", cache.length(b) + steps,
                                                " positions, cache holds ", cache.capacity()));
    }
  }
  if (adapters != nullptr) T2_RETURN_IF_ERROR(ValidateAdapters(*adapters, batch));
  try {
    c10::InferenceMode guard;
    at::Tensor x = ForwardImpl(tokens, new_lengths, &cache, adapters, nullptr);
    const auto& c = config_;
    if (all_positions) {
      return at::linear(RmsNorm(x, norm_, c.rms_norm_eps), lm_head_).to(at::kFloat).cpu();
    }
    // Only each row's last real token needs the output head.
    std::vector<int64_t> last(batch);
    for (int64_t b = 0; b < batch; ++b) last[b] = std::max<int64_t>(new_lengths[b] - 1, 0);
    auto index = at::tensor(last, at::kLong).to(x.device()).view({batch, 1, 1}).expand({batch, 1, x.size(2)});
    auto h_last = x.gather(1, index).squeeze(1);  // [B, H]
    auto logits = Linear(RmsNorm(h_last, norm_, c.rms_norm_eps), lm_head_).to(at::kFloat).cpu();
    for (int64_t b = 0; b < batch; ++b) {
      if (new_lengths[b] == 0) logits[b].zero_();
    }
    return logits;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("forward: ", e.what_without_backtrace()));
  }
}

absl::Status LlamaModel::ValidateWeightOverrides(const std::map<std::string, at::Tensor>& weights) const {
  for (const auto& [name, w] : weights) {
    auto it = parameters_.find(name);
    if (it == parameters_.end() || !IsProjection(name)) {
      return absl::InvalidArgumentError(absl::StrCat("weights: '", name, "' is not a projection matrix of the model"));
    }
    if (!w.defined() || !w.sizes().equals(it->second.sizes()) || w.scalar_type() != options_.dtype() ||
        w.device() != options_.device()) {
      return absl::InvalidArgumentError(absl::StrCat("weights '", name, "': must be ", it->second.size(0), "x",
                                                     it->second.size(1), " ", dtype_name(), " on ", device_name()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> LlamaModel::ForwardTrain(const at::Tensor& tokens, std::span<const int64_t> lengths,
                                                    std::span<const int64_t> scored_from,
                                                    const std::map<std::string, at::Tensor>& weights) {
  T2_RETURN_IF_ERROR(ValidateTokens(tokens, lengths, tokens.dim() == 2 ? tokens.size(0) : -1));
  const int64_t batch = tokens.size(0), steps = tokens.size(1);
  if (steps > config_.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("forward: ", steps, " positions exceed the model's context of ",
                                                   config_.max_position_embeddings));
  }
  if (static_cast<int64_t>(scored_from.size()) != batch) {
    return absl::InvalidArgumentError(absl::StrCat("forward: scored_from has ", scored_from.size(),
                                                   " entries for a batch of ", batch));
  }
  std::vector<int64_t> index;  // flat [b * T + t - 1] of each scored token t
  for (int64_t b = 0; b < batch; ++b) {
    if (scored_from[b] < 1 || scored_from[b] > lengths[b]) {
      return absl::InvalidArgumentError(absl::StrCat("forward: scored_from[", b, "] = ", scored_from[b],
                                                     " outside [1, ", lengths[b], "]"));
    }
    for (int64_t t = scored_from[b]; t < lengths[b]; ++t) index.push_back(b * steps + t - 1);
  }
  T2_RETURN_IF_ERROR(ValidateWeightOverrides(weights));
  // The beginning every row shares, up to the first position whose logits are needed.
  int64_t shared = batch > 1 ? *std::min_element(scored_from.begin(), scored_from.end()) - 1 : 0;
  const at::Tensor ids = tokens.contiguous();
  const auto row = [&](int64_t b) { return ids.data_ptr<int64_t>() + b * steps; };
  for (int64_t b = 1; b < batch && shared > 0; ++b) {
    int64_t n = 0;
    while (n < shared && row(b)[n] == row(0)[n]) ++n;
    shared = n;
  }
  try {
    at::Tensor x;
    if (shared >= kMinSharedPrefix) {
      SharedPrefix prefix;
      prefix.length = shared;
      const int64_t one[] = {shared};
      ForwardImpl(ids.narrow(0, 0, 1).narrow(1, 0, shared), one, nullptr, nullptr, &weights, nullptr, &prefix);
      std::vector<int64_t> rest(lengths.begin(), lengths.end());
      for (int64_t& n : rest) n -= shared;
      x = ForwardImpl(ids.narrow(1, shared, steps - shared), rest, nullptr, nullptr, &weights, &prefix);
      for (int64_t& i : index) i -= (i / steps + 1) * shared;  // [b * T + t] -> [b * (T - P) + t - P]
    } else {
      x = ForwardImpl(tokens, lengths, nullptr, nullptr, &weights);
    }
    at::Tensor h = x.reshape({-1, x.size(2)}).index_select(0, at::tensor(index, at::kLong).to(x.device()));
    return at::linear(RmsNorm(h, norm_, config_.rms_norm_eps), lm_head_).to(at::kFloat);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("forward (training): ", e.what_without_backtrace()));
  }
}

absl::Status LlamaModel::ValidateAdapters(const RowAdapters& adapters, int64_t batch) const {
  if (static_cast<int64_t>(adapters.adapted.size()) != batch) {
    return absl::InvalidArgumentError(absl::StrCat("adapters.adapted: ", adapters.adapted.size(),
                                                   " entries for a batch of ", batch));
  }
  for (const auto& [name, f] : adapters.matrices) {
    auto it = parameters_.find(name);
    if (it == parameters_.end() || !IsProjection(name)) {
      return absl::InvalidArgumentError(absl::StrCat("adapters: '", name, "' is not a projection matrix of the model"));
    }
    const int64_t n = it->second.size(0), m = it->second.size(1);
    if (!f.u.defined() || !f.vt.defined() || !f.scale.defined() || f.u.dim() != 2 || f.vt.dim() != 2 ||
        f.scale.dim() != 2) {
      return absl::InvalidArgumentError(absl::StrCat("adapters '", name, "': u, vt and scale must be 2-D tensors"));
    }
    const int64_t r = f.u.size(1);
    if (f.u.size(0) != n || f.vt.size(0) != r || f.vt.size(1) != m || f.scale.size(0) != batch ||
        f.scale.size(1) != r) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adapters '", name, "': shapes u ", f.u.size(0), "x", f.u.size(1), ", vt ", f.vt.size(0), "x", f.vt.size(1),
          ", scale ", f.scale.size(0), "x", f.scale.size(1), " do not fit a ", n, "x", m, " matrix and a batch of ",
          batch));
    }
    for (const auto* t : {&f.u, &f.vt, &f.scale}) {
      if (t->scalar_type() != at::kFloat || t->device() != options_.device() || !t->is_contiguous()) {
        return absl::InvalidArgumentError(absl::StrCat("adapters '", name,
                                                       "': factors must be contiguous float32 on ", device_name()));
      }
    }
  }
  return absl::OkStatus();
}

at::Tensor LlamaModel::ForwardImpl(const at::Tensor& tokens, std::span<const int64_t> new_lengths, KvCache* cache,
                                   const RowAdapters* adapters, const std::map<std::string, at::Tensor>* weights,
                                   const SharedPrefix* prefix, SharedPrefix* prefix_out) {
  const auto& c = config_;
  const int64_t batch = tokens.size(0), steps = tokens.size(1);
  const int64_t q_dim = c.num_attention_heads * c.head_dim;
  const int64_t kv_dim = c.num_key_value_heads * c.head_dim;
  const auto device = options_.device();

  std::vector<int64_t> starts(batch);
  bool same_start = true;
  for (int64_t b = 0; b < batch; ++b) {
    starts[b] = cache != nullptr ? cache->length(b) : (prefix != nullptr ? prefix->length : 0);
    same_start = same_start && starts[b] == starts[0];
  }
  auto start_t = at::tensor(starts, at::kLong).to(device);
  auto positions = start_t.unsqueeze(1) + at::arange(steps, at::TensorOptions().dtype(at::kLong).device(device));
  const int64_t keys = *std::max_element(starts.begin(), starts.end()) + steps;

  // Rotary tables for these positions, computed the way HF does (float32 outer product).
  auto freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [B, T, D/2]
  auto emb = at::cat({freqs, freqs}, -1);
  auto cos = emb.cos().to(options_.dtype()).unsqueeze(1);  // [B, 1, T, D]
  auto sin = emb.sin().to(options_.dtype()).unsqueeze(1);

  // Which cached keys each query may see: key j for query i of row b iff j <= start_b + i.
  // A single row starting at 0 (plain prefill) or equal-length decode needs no mask.
  std::optional<at::Tensor> mask;
  bool causal = false;
  if (same_start && starts[0] == 0 && steps > 1) {
    causal = true;
  } else if (!(same_start && steps == 1)) {
    auto key_pos = at::arange(keys, at::TensorOptions().dtype(at::kLong).device(device));
    mask = (key_pos.view({1, 1, 1, keys}) <= positions.view({batch, 1, steps, 1}));
  }

  const AdaptedRows rows = SplitRows(adapters, batch, device);
  // The factored form of layer i's matrix `proj` if this batch adapts it, else nullptr.
  auto factored = [&](int64_t i, const char* proj) -> const FactoredMatrix* {
    if (!rows.any) return nullptr;
    auto it = adapters->matrices.find(absl::StrCat("model.layers.", i, ".", proj, ".weight"));
    return it == adapters->matrices.end() ? nullptr : &it->second;
  };
  const int64_t ff = c.intermediate_size;
  // Layer i's (possibly fused) weight with the replaced HF matrices in place of their rows.
  auto weight = [&](int64_t i, const at::Tensor& fused, std::initializer_list<const char*> projs) {
    if (weights == nullptr || weights->empty()) return fused;
    std::vector<at::Tensor> parts;
    bool replaced = false;
    int64_t offset = 0;
    for (const char* proj : projs) {
      const std::string name = absl::StrCat("model.layers.", i, ".", proj, ".weight");
      const at::Tensor& own = parameters_.at(name);
      auto it = weights->find(name);
      replaced = replaced || it != weights->end();
      parts.push_back(it != weights->end() ? it->second : fused.narrow(0, offset, own.size(0)));
      offset += own.size(0);
    }
    if (!replaced) return fused;
    return parts.size() == 1 ? parts[0] : at::cat(parts);
  };

  at::Tensor x = at::embedding(embed_, tokens.to(device));  // [B, T, H]
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    Layer& l = layers_[i];
    const at::Tensor w_qkv = weight(i, l.qkv, {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"});
    const at::Tensor w_o = weight(i, l.o, {"self_attn.o_proj"});
    const at::Tensor w_gate_up = weight(i, l.gate_up, {"mlp.gate_proj", "mlp.up_proj"});
    const at::Tensor w_down = weight(i, l.down, {"mlp.down_proj"});
    const FusedPart qkv_parts[] = {{factored(i, "self_attn.q_proj"), 0, q_dim},
                                   {factored(i, "self_attn.k_proj"), q_dim, kv_dim},
                                   {factored(i, "self_attn.v_proj"), q_dim + kv_dim, kv_dim}};
    const FusedPart o_parts[] = {{factored(i, "self_attn.o_proj"), 0, c.hidden_size}};
    const FusedPart gate_up_parts[] = {{factored(i, "mlp.gate_proj"), 0, ff}, {factored(i, "mlp.up_proj"), ff, ff}};
    const FusedPart down_parts[] = {{factored(i, "mlp.down_proj"), 0, c.hidden_size}};

    auto h = RmsNorm(x, l.input_norm, c.rms_norm_eps);
    auto qkv = LinearWithAdapters(h, w_qkv, l.qkv_bias, qkv_parts, rows);
    auto q = qkv.narrow(-1, 0, q_dim).view({batch, steps, c.num_attention_heads, c.head_dim}).transpose(1, 2);
    auto k = qkv.narrow(-1, q_dim, kv_dim).view({batch, steps, c.num_key_value_heads, c.head_dim}).transpose(1, 2);
    auto v = qkv.narrow(-1, q_dim + kv_dim, kv_dim).view({batch, steps, c.num_key_value_heads, c.head_dim}).transpose(1, 2);
    q = q * cos + RotateHalf(q) * sin;
    k = k * cos + RotateHalf(k) * sin;

    at::Tensor keys_k = k, keys_v = v;  // without a cache: this call's tokens only
    if (prefix_out != nullptr) {
      prefix_out->k.push_back(k);
      prefix_out->v.push_back(v);
    }
    if (prefix != nullptr) {  // the shared beginning's keys first, the same for every row
      keys_k = at::cat({prefix->k[i].expand({batch, -1, -1, -1}), k}, 2);
      keys_v = at::cat({prefix->v[i].expand({batch, -1, -1, -1}), v}, 2);
    }
    if (cache != nullptr) {
      auto& kc = cache->k_[i];
      auto& vc = cache->v_[i];
      if (same_start) {
        kc.narrow(2, starts[0], steps).copy_(k);
        vc.narrow(2, starts[0], steps).copy_(v);
      } else {
        for (int64_t b = 0; b < batch; ++b) {
          kc[b].narrow(1, starts[b], steps).copy_(k[b]);
          vc[b].narrow(1, starts[b], steps).copy_(v[b]);
        }
      }
      keys_k = kc.narrow(2, 0, keys);
      keys_v = vc.narrow(2, 0, keys);
    }
    auto attn = at::scaled_dot_product_attention(q, keys_k, keys_v, mask, 0.0, causal, std::nullopt,
                                                 /*enable_gqa=*/true);
    attn = attn.transpose(1, 2).reshape({batch, steps, q_dim});
    x = x + LinearWithAdapters(attn, w_o, {}, o_parts, rows);

    h = RmsNorm(x, l.post_norm, c.rms_norm_eps);
    auto gu = LinearWithAdapters(h, w_gate_up, {}, gate_up_parts, rows);
    auto act = at::silu(gu.narrow(-1, 0, ff)) * gu.narrow(-1, ff, ff);
    x = x + LinearWithAdapters(act, w_down, {}, down_parts, rows);
  }
  if (cache != nullptr) {
    for (int64_t b = 0; b < batch; ++b) (*cache->lengths_)[cache->offset_ + b] += new_lengths[b];
  }
  return x;
}

}  // namespace t2::model
