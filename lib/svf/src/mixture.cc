// z-space mixtures of experts.
#include "t2/svf/mixture.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::svf {
namespace {

absl::Status CheckCompatible(const Expert& first, const Expert& other, size_t k) {
  const std::string who = absl::StrCat("experts[", k, "]");
  if (other.metadata.targets != first.metadata.targets) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": targets '", AsAbsl(TargetSetName(other.metadata.targets)), "' differ from experts[0]'s '",
        AsAbsl(TargetSetName(first.metadata.targets)), "'"));
  }
  // The same z means a different W' under another normalisation, so a mixture of the two
  // would not interpolate between the experts.
  if (other.metadata.normalization != first.metadata.normalization) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": normalization '", AsAbsl(NormalizationName(other.metadata.normalization)),
        "' differs from experts[0]'s '", AsAbsl(NormalizationName(first.metadata.normalization)), "'"));
  }
  for (const auto& [name, z] : first.z) {
    auto it = other.z.find(name);
    if (it == other.z.end()) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": has no vector for '", name, "'"));
    }
    if (!it->second.defined() || it->second.dim() != 1 || it->second.size(0) != z.size(0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          who, ": vector '", name, "' has ", it->second.defined() ? it->second.numel() : 0,
          " values, experts[0]'s has ", z.size(0)));
    }
  }
  for (const auto& [name, z] : other.z) {
    if (first.z.count(name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": has a vector for '", name, "', which experts[0] lacks"));
    }
  }
  return absl::OkStatus();
}

// α as rows of K normalised weights: one row (global) or one per layer.
absl::StatusOr<std::vector<std::vector<double>>> NormalisedAlpha(const MixtureWeights& weights, size_t k,
                                                                 int num_layers) {
  const size_t rows = weights.per_layer ? static_cast<size_t>(num_layers) : 1;
  if (weights.per_layer && num_layers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_layers must be positive for per-layer weights, got ", num_layers));
  }
  if (weights.alpha.size() != rows * k) {
    return absl::InvalidArgumentError(
        weights.per_layer
            ? absl::StrCat("alpha: ", weights.alpha.size(), " values, expected ", num_layers, " layers × ", k,
                           " experts = ", rows * k)
            : absl::StrCat("alpha: ", weights.alpha.size(), " values, expected one per expert (", k, ")"));
  }
  std::vector<std::vector<double>> out(rows, std::vector<double>(k));
  for (size_t row = 0; row < rows; ++row) {
    double sum = 0;
    for (size_t j = 0; j < k; ++j) {
      const size_t i = row * k + j;
      const double a = weights.alpha[i];
      if (!std::isfinite(a) || a < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "alpha[", i, "]", weights.per_layer ? absl::StrCat(" (layer ", row, ", expert ", j, ")") : "",
            " is ", a, "; weights must be finite and >= 0"));
      }
      out[row][j] = a;
      sum += a;
    }
    if (!(sum > 0)) {
      return absl::InvalidArgumentError(
          weights.per_layer ? absl::StrCat("alpha of layer ", row, " sums to 0; at least one must be positive")
                            : "alpha sums to 0; at least one weight must be positive");
    }
    for (double& a : out[row]) a /= sum;
  }
  return out;
}

}  // namespace

absl::StatusOr<Expert> MixExperts(std::span<const Expert* const> experts, const MixtureWeights& weights,
                                  int num_layers) {
  if (experts.empty()) return absl::InvalidArgumentError("experts: at least one is required");
  for (size_t k = 0; k < experts.size(); ++k) {
    if (experts[k] == nullptr) return absl::InvalidArgumentError(absl::StrCat("experts[", k, "] is null"));
  }
  const Expert& first = *experts[0];
  if (first.z.empty()) return absl::InvalidArgumentError("experts[0]: holds no vectors");
  for (const auto& [name, z] : first.z) {
    if (!z.defined() || z.dim() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("experts[0]: vector '", name, "' is not 1-D"));
    }
  }
  for (size_t k = 1; k < experts.size(); ++k) T2_RETURN_IF_ERROR(CheckCompatible(first, *experts[k], k));
  T2_ASSIGN_OR_RETURN(auto alpha, NormalisedAlpha(weights, experts.size(), num_layers));

  Expert mixed;
  mixed.metadata = first.metadata;
  mixed.metadata.task = "mixture";
  try {
    c10::NoGradGuard no_grad;
    for (const auto& [name, z0] : first.z) {
      size_t row = 0;
      if (weights.per_layer) {
        const std::optional<int> layer = LayerOf(name);
        if (!layer.has_value() || *layer >= num_layers) {
          return absl::InvalidArgumentError(
              absl::StrCat("vector '", name, "' has no layer index below num_layers (", num_layers, ")"));
        }
        row = static_cast<size_t>(*layer);
      }
      // float64 accumulation: the result is then one rounding away from the exact mixture.
      at::Tensor sum = at::zeros({z0.size(0)}, at::TensorOptions().dtype(at::kDouble));
      for (size_t k = 0; k < experts.size(); ++k) {
        sum.add_(experts[k]->z.at(name).to(at::kCPU, at::kDouble), alpha[row][k]);
      }
      mixed.z[name] = sum.to(at::kFloat);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("mixing experts: ", e.what_without_backtrace()));
  }
  return mixed;
}

}  // namespace t2::svf
