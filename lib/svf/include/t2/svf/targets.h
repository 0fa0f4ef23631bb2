// Which weight matrices SVF adapts, named by their HF names. Free of LibTorch (its own
// library, t2::svf_targets): the registry checks expert files with these rules too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace t2::svf {

// mlp: gate/up/down of every layer (the reference implementation's default);
// attn: q/k/v/o; all: both.
enum class TargetSet { kMlp, kAttn, kAll };
inline constexpr TargetSet kTargetSets[] = {TargetSet::kMlp, TargetSet::kAttn, TargetSet::kAll};

std::string_view TargetSetName(TargetSet targets);             // "mlp", "attn", "all"
absl::StatusOr<TargetSet> ParseTargetSet(std::string_view name);  // InvalidArgument naming the value

// HF names ("model.layers.3.mlp.gate_proj.weight") of the target matrices of a model, layer
// by layer, in the order q, k, v, o, gate, up, down within a layer.
std::vector<std::string> TargetMatrixNames(int64_t num_layers, TargetSet targets);

// True if `targets` includes the matrix `name` (an HF weight name).
bool IsTarget(TargetSet targets, std::string_view name);

// The layer index in "model.layers.<N>.…", or nullopt for names outside the layers.
std::optional<int> LayerOf(std::string_view name);

}  // namespace t2::svf
