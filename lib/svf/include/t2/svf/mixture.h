// Mixtures of experts in z space (the few-shot strategy's result): z_mix = Σₖ αₖ zₖ per
// matrix, with α normalised to sum to 1, either one α for the whole model or one per layer.
#pragma once

#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "t2/svf/expert.h"

namespace t2::svf {

struct MixtureWeights {
  // K values (global) or num_layers × K values, row-major by layer (per_layer).
  std::vector<double> alpha;
  bool per_layer = false;
};

// Mixes K >= 1 experts. They must share target set, matrices and ranks; α must be finite,
// >= 0, and sum to > 0 (per layer when per_layer). The result's metadata is the first
// expert's with task "mixture". InvalidArgument naming the expert index or α entry.
absl::StatusOr<Expert> MixExperts(std::span<const Expert* const> experts, const MixtureWeights& weights,
                                  int num_layers);

}  // namespace t2::svf
