#include "t2/svf/targets.h"

#include <array>
#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::svf {
namespace {

constexpr std::string_view kLayerPrefix = "model.layers.";
// Within a layer, in the order TargetMatrixNames promises: attention first, then MLP.
constexpr std::array<std::string_view, 4> kAttnSuffixes = {
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight"};
constexpr std::array<std::string_view, 3> kMlpSuffixes = {
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};

bool HasAttn(TargetSet targets) {
  return targets == TargetSet::kAttn || targets == TargetSet::kAll;
}
bool HasMlp(TargetSet targets) { return targets == TargetSet::kMlp || targets == TargetSet::kAll; }

// Splits "model.layers.<N>.<rest>" into N and rest; false for anything else (no sign, no
// leading '+', no empty or overflowing number).
bool SplitLayerName(std::string_view name, int* layer, std::string_view* rest) {
  if (name.substr(0, kLayerPrefix.size()) != kLayerPrefix) return false;
  name.remove_prefix(kLayerPrefix.size());
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos) return false;
  std::string_view digits = name.substr(0, dot);
  // "01" would alias layer 1 under a different name; HF never writes it.
  if (digits.size() > 1 && digits[0] == '0') return false;
  int value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value < 0) return false;
  *layer = value;
  *rest = name.substr(dot + 1);
  return true;
}

}  // namespace

std::string_view TargetSetName(TargetSet targets) {
  switch (targets) {
    case TargetSet::kMlp:
      return "mlp";
    case TargetSet::kAttn:
      return "attn";
    case TargetSet::kAll:
      return "all";
  }
  return "unknown";
}

absl::StatusOr<TargetSet> ParseTargetSet(std::string_view name) {
  for (TargetSet t : {TargetSet::kMlp, TargetSet::kAttn, TargetSet::kAll}) {
    if (name == TargetSetName(t)) return t;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("targets: '", AsAbsl(name), "' is not one of mlp, attn, all"));
}

std::vector<std::string> TargetMatrixNames(int64_t num_layers, TargetSet targets) {
  std::vector<std::string> names;
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    const std::string prefix = absl::StrCat(AsAbsl(kLayerPrefix), layer, ".");
    if (HasAttn(targets)) {
      for (std::string_view s : kAttnSuffixes) names.push_back(absl::StrCat(prefix, AsAbsl(s)));
    }
    if (HasMlp(targets)) {
      for (std::string_view s : kMlpSuffixes) names.push_back(absl::StrCat(prefix, AsAbsl(s)));
    }
  }
  return names;
}

bool IsTarget(TargetSet targets, std::string_view name) {
  int layer = 0;
  std::string_view rest;
  if (!SplitLayerName(name, &layer, &rest)) return false;
  if (HasAttn(targets)) {
    for (std::string_view s : kAttnSuffixes) {
      if (rest == s) return true;
    }
  }
  if (HasMlp(targets)) {
    for (std::string_view s : kMlpSuffixes) {
      if (rest == s) return true;
    }
  }
  return false;
}

std::optional<int> LayerOf(std::string_view name) {
  int layer = 0;
  std::string_view rest;
  if (!SplitLayerName(name, &layer, &rest) || rest.empty()) return std::nullopt;
  return layer;
}

}  // namespace t2::svf
