// What the decomposition benchmarks (svd_bench, rebuild_bench) share: their arguments,
// [model|default] [cpu|cuda[:N]] [threads], and the model they name, loaded in float32 on
// every device (the SVD is float32 whatever the serving dtype).
#pragma once

#include <ATen/Parallel.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <variant>

#include "t2/common/env.h"
#include "t2/model/device_spec.h"
#include "t2/model/llama.h"

namespace t2::bench {

struct Float32Model {
  std::filesystem::path path;  // the model's file or folder
  std::unique_ptr<model::LlamaModel> model;
};

// The model, or the exit code to return after the reason is printed: 2 for a bad device
// argument, 1 when the model cannot be found or loaded. A threads argument > 0 sets torch's.
inline std::variant<Float32Model, int> LoadFloat32Model(int argc, char** argv) {
  auto device = model::DeviceSpec::Parse(argc > 2 ? argv[2] : "cpu");
  if (!device.ok()) {
    std::cerr << "device: " << device.status().message() << "\n";
    return 2;
  }
  const int threads = argc > 3 ? std::atoi(argv[3]) : 0;
  if (threads > 0) at::set_num_threads(threads);
  auto path = ResolveModelPath(argc > 1 ? argv[1] : "default");
  if (!path.ok()) {
    std::cerr << path.status() << "\n";
    return 1;
  }
  auto loaded =
      model::LlamaModel::Load(*path, {.device = *device, .dtype = model::ComputeDType::kFloat32});
  if (!loaded.ok()) {
    std::cerr << loaded.status() << "\n";
    return 1;
  }
  return Float32Model{.path = *std::move(path), .model = *std::move(loaded)};
}

}  // namespace t2::bench
