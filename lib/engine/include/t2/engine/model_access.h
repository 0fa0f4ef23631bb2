// In-tree access to a Generator's model, for training SVF experts (lib/train): the trainer
// samples rollouts through the generator and runs its forward/backward passes on the same
// model, so the weights are held once and there is one forward implementation.
//
// This header sees LibTorch (through t2/model and t2/svf); services never include it. The
// generator's own header stays torch-free.
#pragma once

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "t2/engine/generator.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"

namespace t2::engine {

struct ModelAccess {
  model::LlamaModel& model;                 // its weights are the base weights during the call
  const svf::Decomposition& decomposition;  // of GeneratorOptions::svf's target set
};

struct TrainingAccess {
  // Runs `fn` with the model to itself: between scheduler steps, holding the model lock (no
  // request or Score runs meanwhile; they wait), with the base weights in place of any
  // merged expert. `fn` must leave the weights as it found them. FailedPrecondition without
  // SVF; otherwise what `fn` returns.
  static absl::Status WithModel(Generator& generator, absl::FunctionRef<absl::Status(const ModelAccess&)> fn);

  // Registers an expert that is already in memory under `name`, replacing one of that name
  // (the cached W' and prompt prefixes of the old one are dropped). Checked like
  // Generator::AddExpert (svf::ValidateExpert).
  static absl::Status AddExpert(Generator& generator, const std::string& name, svf::Expert expert);
};

}  // namespace t2::engine
