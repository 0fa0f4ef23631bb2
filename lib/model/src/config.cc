#include "t2/model/config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "t2/common/status.h"
#include "t2/formats/gguf.h"

namespace t2::model {

absl::Status ModelConfig::Validate() const {
  auto positive = [](int64_t v, const char* field) -> absl::Status {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat("config: ", field, " must be > 0, got ", v));
    return absl::OkStatus();
  };
  T2_RETURN_IF_ERROR(positive(vocab_size, "vocab_size"));
  T2_RETURN_IF_ERROR(positive(hidden_size, "hidden_size"));
  T2_RETURN_IF_ERROR(positive(intermediate_size, "intermediate_size"));
  T2_RETURN_IF_ERROR(positive(num_hidden_layers, "num_hidden_layers"));
  T2_RETURN_IF_ERROR(positive(num_attention_heads, "num_attention_heads"));
  T2_RETURN_IF_ERROR(positive(num_key_value_heads, "num_key_value_heads"));
  T2_RETURN_IF_ERROR(positive(head_dim, "head_dim"));
  T2_RETURN_IF_ERROR(positive(max_position_embeddings, "max_position_embeddings"));
  if (num_attention_heads % num_key_value_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: num_attention_heads (", num_attention_heads,
                     ") is not a multiple of num_key_value_heads (", num_key_value_heads, ")"));
  }
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config: head_dim must be even, got ", head_dim));
  }
  if (!(rms_norm_eps > 0) || !(rope_theta > 0)) {
    return absl::InvalidArgumentError("config: rms_norm_eps and rope_theta must be > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ConfigFromGguf(const formats::GgufFile& file) {
  ModelConfig c;
  T2_ASSIGN_OR_RETURN(std::string arch, file.GetString("general.architecture"));
  if (arch != "llama" && arch != "qwen2") {
    return absl::UnimplementedError(
        absl::StrCat("gguf: general.architecture '", arch, "' is not supported (llama, qwen2)"));
  }
  c.architecture = arch;
  if (auto name = file.GetString("general.name"); name.ok()) c.name = *name;
  auto key = [&](const char* suffix) { return absl::StrCat(arch, ".", suffix); };
  auto get_int = [&](const char* suffix, int64_t& out) -> absl::Status {
    auto v = file.GetInt(key(suffix));
    if (!v.ok()) return Annotate(v.status(), absl::StrCat("gguf: ", key(suffix)));
    out = *v;
    return absl::OkStatus();
  };
  T2_RETURN_IF_ERROR(get_int("block_count", c.num_hidden_layers));
  T2_RETURN_IF_ERROR(get_int("embedding_length", c.hidden_size));
  T2_RETURN_IF_ERROR(get_int("feed_forward_length", c.intermediate_size));
  T2_RETURN_IF_ERROR(get_int("attention.head_count", c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;
  if (file.Has(key("attention.head_count_kv"))) {
    T2_RETURN_IF_ERROR(get_int("attention.head_count_kv", c.num_key_value_heads));
  }
  if (file.Has(key("context_length"))) {
    T2_RETURN_IF_ERROR(get_int("context_length", c.max_position_embeddings));
  }
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  if (file.Has(key("attention.key_length"))) T2_RETURN_IF_ERROR(get_int("attention.key_length", c.head_dim));
  if (file.Has(key("rope.freq_base"))) {
    T2_ASSIGN_OR_RETURN(c.rope_theta, file.GetFloat(key("rope.freq_base")));
  }
  T2_ASSIGN_OR_RETURN(c.rms_norm_eps, file.GetFloat(key("attention.layer_norm_rms_epsilon")));
  if (file.Has(key("vocab_size"))) {
    T2_RETURN_IF_ERROR(get_int("vocab_size", c.vocab_size));
  } else {
    T2_ASSIGN_OR_RETURN(auto tokens, file.GetStringArray("tokenizer.ggml.tokens"));
    c.vocab_size = static_cast<int64_t>(tokens.size());
  }
  // llama.cpp stores Llama-3 RoPE scaling as precomputed per-frequency factors in the tensor
  // rope_freqs.weight; the weight loader applies those. No output.weight means tied.
  c.tie_word_embeddings = file.FindTensor("output.weight") == nullptr;
  c.attention_bias = file.FindTensor("blk.0.attn_q.bias") != nullptr;
  T2_RETURN_IF_ERROR(c.Validate());
  return c;
}

namespace {

absl::StatusOr<nlohmann::json> ReadJsonObject(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config: cannot open ", path.string()));
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto j = nlohmann::json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", path.string(), " is not a JSON object"));
  }
  return j;
}

// An integer field of config.json; absent or null leaves `out` as it is unless `required`.
absl::Status ConfigInt(const nlohmann::json& j, const char* field, int64_t* out, bool required) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    return required ? absl::InvalidArgumentError(absl::StrCat("config: missing ", field))
                    : absl::OkStatus();
  }
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", field, " must be an integer"));
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

// An optional number field of config.json; absent or null leaves `out` as it is.
absl::Status ConfigFloat(const nlohmann::json& j, const char* field, double* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", field, " must be a number"));
  }
  *out = it->get<double>();
  return absl::OkStatus();
}

// The integer sizes; num_key_value_heads and head_dim default from the attention heads.
absl::Status ReadHfSizes(const nlohmann::json& j, ModelConfig* c) {
  T2_RETURN_IF_ERROR(ConfigInt(j, "vocab_size", &c->vocab_size, true));
  T2_RETURN_IF_ERROR(ConfigInt(j, "hidden_size", &c->hidden_size, true));
  T2_RETURN_IF_ERROR(ConfigInt(j, "intermediate_size", &c->intermediate_size, true));
  T2_RETURN_IF_ERROR(ConfigInt(j, "num_hidden_layers", &c->num_hidden_layers, true));
  T2_RETURN_IF_ERROR(ConfigInt(j, "num_attention_heads", &c->num_attention_heads, true));
  c->num_key_value_heads = c->num_attention_heads;
  T2_RETURN_IF_ERROR(ConfigInt(j, "num_key_value_heads", &c->num_key_value_heads, false));
  c->head_dim = c->num_attention_heads > 0 ? c->hidden_size / c->num_attention_heads : 0;
  T2_RETURN_IF_ERROR(ConfigInt(j, "head_dim", &c->head_dim, false));
  T2_RETURN_IF_ERROR(ConfigInt(j, "max_position_embeddings", &c->max_position_embeddings, false));
  return absl::OkStatus();
}

// Llama-3 RoPE scaling, under rope_scaling or (transformers 5) rope_parameters; other
// non-default types are unsupported.
absl::Status ReadHfRopeScaling(const nlohmann::json& j, Llama3RopeScaling* scaling) {
  for (const char* field : {"rope_scaling", "rope_parameters"}) {
    auto rs = j.find(field);
    if (rs == j.end() || !rs->is_object()) continue;
    std::string type = rs->value("rope_type", rs->value("type", ""));
    if (type == "llama3") {
      scaling->enabled = true;
      scaling->factor = rs->value("factor", scaling->factor);
      scaling->low_freq_factor = rs->value("low_freq_factor", scaling->low_freq_factor);
      scaling->high_freq_factor = rs->value("high_freq_factor", scaling->high_freq_factor);
      scaling->original_max_position_embeddings =
          rs->value("original_max_position_embeddings", scaling->original_max_position_embeddings);
    } else if (!type.empty() && type != "default") {
      return absl::UnimplementedError(
          absl::StrCat("config: ", field, " type '", type, "' is not supported"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ConfigFromHfDir(const std::filesystem::path& dir) {
  auto path = dir / "config.json";
  T2_ASSIGN_OR_RETURN(nlohmann::json j, ReadJsonObject(path));
  ModelConfig c;
  std::string model_type = j.value("model_type", "");
  if (model_type != "llama" && model_type != "mistral" && model_type != "qwen2") {
    return absl::UnimplementedError(absl::StrCat(
        "config: model_type '", model_type, "' is not supported (llama, mistral, qwen2)"));
  }
  c.architecture = model_type;
  c.name = dir.filename().string();
  T2_RETURN_IF_ERROR(ReadHfSizes(j, &c));
  T2_RETURN_IF_ERROR(ConfigFloat(j, "rms_norm_eps", &c.rms_norm_eps));
  T2_RETURN_IF_ERROR(ConfigFloat(j, "rope_theta", &c.rope_theta));
  // transformers 5 may nest rope_theta under rope_parameters.
  if (auto rp = j.find("rope_parameters"); rp != j.end() && rp->is_object()) {
    if (auto th = rp->find("rope_theta"); th != rp->end() && th->is_number()) c.rope_theta = th->get<double>();
  }
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  if (j.value("mlp_bias", false)) {
    return absl::UnimplementedError("config: mlp_bias = true is not supported");
  }
  bool uses_window = model_type == "mistral" || (model_type == "qwen2" && j.value("use_sliding_window", false));
  if (auto sw = j.find("sliding_window"); uses_window && sw != j.end() && sw->is_number_integer()) {
    c.sliding_window = sw->get<int64_t>();
  }
  c.attention_bias = model_type == "qwen2" ? true : j.value("attention_bias", false);
  T2_RETURN_IF_ERROR(ReadHfRopeScaling(j, &c.rope_scaling));
  T2_RETURN_IF_ERROR(c.Validate());
  return c;
}

}  // namespace t2::model
