// Architecture hyper-parameters of a Llama-family decoder, read from GGUF metadata or an HF
// config.json. Field names follow HF's LlamaConfig.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace t2::formats {
class GgufFile;
}

namespace t2::model {

// Llama-3's frequency-dependent RoPE scaling ("rope_type": "llama3").
struct Llama3RopeScaling {
  bool enabled = false;
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture = "llama";  // "llama", "mistral" or "qwen2"
  std::string name;                     // human-readable, for logs and `t2 info`
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless the checkpoint says
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  Llama3RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // Qwen2: q/k/v projections carry biases
  // Mistral/Qwen2 sliding-window attention span (0: none). Attention over at most this many
  // positions equals full attention, so t2 serves such models up to this context and refuses
  // longer caches rather than computing something else.
  int64_t sliding_window = 0;

  // InvalidArgumentError naming the first field that is missing or inconsistent.
  absl::Status Validate() const;
};

// From GGUF metadata ({arch}.block_count, {arch}.embedding_length, ...). Supported
// general.architecture values: llama (also Mistral and SmolLM2 files), qwen2.
absl::StatusOr<ModelConfig> ConfigFromGguf(const formats::GgufFile& file);

// From an HF checkpoint folder's config.json (model_type llama, mistral or qwen2).
absl::StatusOr<ModelConfig> ConfigFromHfDir(const std::filesystem::path& dir);

}  // namespace t2::model
