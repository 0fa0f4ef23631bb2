#include "t2/model/weights.h"

#include <ATen/ATen.h>

#include <optional>
#include <regex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "t2/common/status.h"
#include "t2/formats/dequantize.h"
#include "t2/formats/gguf.h"
#include "t2/formats/safetensors.h"

namespace t2::model {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape.vec(), ", "), "]");
}

// GGUF tensor name -> HF name, or nullopt for a name t2 does not know.
std::optional<std::string> HfNameForGguf(const std::string& gguf_name) {
  static const std::map<std::string, std::string> kGlobal = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
      {"rope_freqs.weight", kRopeFreqFactors},
  };
  static const std::map<std::string, std::string> kLayer = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  if (auto it = kGlobal.find(gguf_name); it != kGlobal.end()) return it->second;
  static const std::regex kBlock(R"(blk\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(gguf_name, m, kBlock)) return std::nullopt;
  auto it = kLayer.find(m[2].str());
  if (it == kLayer.end()) return std::nullopt;
  return absl::StrCat("model.layers.", m[1].str(), ".", it->second);
}

// llama.cpp's converter reorders each head's rows of q/k from HF's [first half | second half]
// rotary layout to interleaved pairs; this restores HF's order. `t` is [n_head*head_dim, ...].
at::Tensor UnpermuteRows(const at::Tensor& t, int64_t n_head) {
  auto rows = t.size(0);
  auto rest = t.sizes().slice(1).vec();
  std::vector<int64_t> view = {n_head, rows / n_head / 2, 2};
  view.insert(view.end(), rest.begin(), rest.end());
  return t.reshape(view).transpose(1, 2).reshape(t.sizes()).contiguous();
}

std::map<std::string, std::vector<int64_t>> ExpectedShapes(const ModelConfig& c) {
  std::map<std::string, std::vector<int64_t>> s;
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, ff = c.intermediate_size;
  s["model.embed_tokens.weight"] = {c.vocab_size, h};
  s["model.norm.weight"] = {h};
  if (!c.tie_word_embeddings) s["lm_head.weight"] = {c.vocab_size, h};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    auto p = absl::StrCat("model.layers.", i, ".");
    s[p + "input_layernorm.weight"] = {h};
    s[p + "post_attention_layernorm.weight"] = {h};
    s[p + "self_attn.q_proj.weight"] = {q, h};
    s[p + "self_attn.k_proj.weight"] = {kv, h};
    s[p + "self_attn.v_proj.weight"] = {kv, h};
    s[p + "self_attn.o_proj.weight"] = {h, q};
    if (c.attention_bias) {
      s[p + "self_attn.q_proj.bias"] = {q};
      s[p + "self_attn.k_proj.bias"] = {kv};
      s[p + "self_attn.v_proj.bias"] = {kv};
    }
    s[p + "mlp.gate_proj.weight"] = {ff, h};
    s[p + "mlp.up_proj.weight"] = {ff, h};
    s[p + "mlp.down_proj.weight"] = {h, ff};
  }
  return s;
}

}  // namespace

absl::Status ValidateWeights(const WeightMap& weights, const ModelConfig& config) {
  auto expected = ExpectedShapes(config);
  for (const auto& [name, shape] : expected) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      return absl::InvalidArgumentError(absl::StrCat("weights: missing tensor ", name));
    }
    if (it->second.sizes().vec() != shape) {
      return absl::InvalidArgumentError(absl::StrCat("weights: tensor ", name, " has shape ",
                                                     ShapeString(it->second.sizes()), ", expected ",
                                                     ShapeString(shape)));
    }
  }
  for (const auto& [name, tensor] : weights) {
    if (expected.count(name) == 0 && name != kRopeFreqFactors) {
      return absl::InvalidArgumentError(absl::StrCat("weights: unexpected tensor ", name));
    }
  }
  if (auto it = weights.find(kRopeFreqFactors); it != weights.end()) {
    if (it->second.dim() != 1 || it->second.size(0) != config.head_dim / 2) {
      return absl::InvalidArgumentError(absl::StrCat("weights: rope_freqs has shape ",
                                                     ShapeString(it->second.sizes()),
                                                     ", expected [", config.head_dim / 2, "]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<WeightMap> LoadGgufWeights(const formats::GgufFile& file, const ModelConfig& config) {
  WeightMap weights;
  const bool permuted_rope = config.architecture == "llama";
  for (const auto& info : file.tensors()) {
    auto hf_name = HfNameForGguf(info.name);
    if (!hf_name) {
      return absl::InvalidArgumentError(absl::StrCat("gguf: unknown tensor ", info.name));
    }
    auto shape = info.RowMajorShape();
    at::Tensor t = at::empty(shape, at::kFloat);
    auto status = formats::Dequantize(
        info.type, info.data, std::span<float>(t.data_ptr<float>(), static_cast<size_t>(t.numel())));
    if (!status.ok()) return Annotate(status, absl::StrCat("gguf: tensor ", info.name));
    if (permuted_rope) {
      if (hf_name->ends_with("q_proj.weight") || hf_name->ends_with("q_proj.bias")) {
        t = UnpermuteRows(t, config.num_attention_heads);
      } else if (hf_name->ends_with("k_proj.weight") || hf_name->ends_with("k_proj.bias")) {
        t = UnpermuteRows(t, config.num_key_value_heads);
      }
    }
    weights.emplace(std::move(*hf_name), std::move(t));
  }
  T2_RETURN_IF_ERROR(ValidateWeights(weights, config));
  return weights;
}

absl::StatusOr<WeightMap> LoadHfWeights(const std::filesystem::path& dir, const ModelConfig& config) {
  T2_ASSIGN_OR_RETURN(auto checkpoint, formats::SafetensorsCheckpoint::Open(dir));
  WeightMap weights;
  for (const auto& name : checkpoint.TensorNames()) {
    // Some checkpoints carry the tied head or rotary buffers; the model does not need them.
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;
    const formats::SafetensorsTensor* tensor = checkpoint.Find(name);
    at::Tensor t = at::empty(tensor->shape, at::kFloat);
    T2_RETURN_IF_ERROR(formats::ReadAsFloat32(
        *tensor, std::span<float>(t.data_ptr<float>(), static_cast<size_t>(t.numel()))));
    weights.emplace(name, std::move(t));
  }
  T2_RETURN_IF_ERROR(ValidateWeights(weights, config));
  return weights;
}

}  // namespace t2::model
