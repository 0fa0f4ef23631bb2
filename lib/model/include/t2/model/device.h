// Where the model runs: a device chosen once at start and the compute dtype that goes with it.
#pragma once

#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "absl/status/statusor.h"

namespace t2::model {

struct Placement {
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
};

// True when LibTorch sees a usable CUDA device.
bool CudaAvailable();

// Resolves a device spec ("auto", "cpu", "cuda", "cuda:N") and dtype spec ("auto", "float32",
// "bfloat16", "float16"). "auto" picks CUDA when available; the auto dtype is float32 on CPU
// and bfloat16 on CUDA. Half precision on CPU is refused (slow and not what parity assumes).
absl::StatusOr<Placement> ResolveDevice(const std::string& device, const std::string& dtype);

}  // namespace t2::model
