// Where the model runs: a device chosen once at start and the compute dtype that goes with it.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "absl/status/statusor.h"
#include "t2/model/device_spec.h"

namespace t2::model {

struct Placement {
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
};

// True when LibTorch sees a usable CUDA device.
bool CudaAvailable();

// The placement a device and dtype ask for on this machine. The auto device is CUDA when
// available; the auto dtype is float32 on CPU and bfloat16 on CUDA. Half precision on CPU is
// refused (slow, and not what parity assumes); so is a CUDA device this machine lacks
// (FailedPrecondition when it has none).
absl::StatusOr<Placement> ResolveDevice(DeviceSpec device, ComputeDType dtype);

}  // namespace t2::model
