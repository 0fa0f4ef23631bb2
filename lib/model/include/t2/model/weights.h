// Loading a checkpoint's tensors as float32 CPU tensors keyed by their HF names
// ("model.layers.3.mlp.gate_proj.weight"), whatever the file format. Experts, tools and the
// model all name matrices the same way.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <ATen/Tensor.h>

#include "absl/status/statusor.h"
#include "t2/model/config.h"

namespace t2::formats {
class GgufFile;
}

namespace t2::model {

using WeightMap = std::map<std::string, at::Tensor>;

// Name of the optional per-frequency RoPE divisor tensor llama.cpp writes for Llama-3.1-style
// scaling (GGUF rope_freqs.weight). Not an HF weight; the model applies it to its inv_freq.
inline constexpr const char* kRopeFreqFactors = "rope_freqs";

// Dequantises every tensor of a GGUF file, renames it to its HF name, and undoes the row
// permutation llama.cpp applies to q/k projections of "llama" architecture files (so the
// weights equal the HF checkpoint's and HF's rotate-half RoPE applies). Errors name the
// tensor: unknown name, wrong shape, missing required tensor.
absl::StatusOr<WeightMap> LoadGgufWeights(const formats::GgufFile& file, const ModelConfig& config);

// Reads model.safetensors or a sharded checkpoint (model.safetensors.index.json) in `dir`.
absl::StatusOr<WeightMap> LoadHfWeights(const std::filesystem::path& dir, const ModelConfig& config);

// Checks that `weights` holds exactly the tensors a model of `config` needs, with their
// shapes; InvalidArgumentError naming the first missing, unexpected or misshapen tensor.
absl::Status ValidateWeights(const WeightMap& weights, const ModelConfig& config);

}  // namespace t2::model
