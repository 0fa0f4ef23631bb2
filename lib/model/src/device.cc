#include "t2/model/device.h"

#include <ATen/Context.h>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::model {

bool CudaAvailable() { return at::globalContext().hasCUDA() && at::detail::getCUDAHooks().deviceCount() > 0; }

absl::StatusOr<Placement> ResolveDevice(DeviceSpec device, ComputeDType dtype) {
  Placement p;
  switch (device.kind) {
    case DeviceSpec::Kind::kAuto:
      p.device = CudaAvailable() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
      break;
    case DeviceSpec::Kind::kCpu:
      p.device = c10::kCPU;
      break;
    case DeviceSpec::Kind::kCuda:
      if (!CudaAvailable()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "device: ", device.ToString(), " requested but no CUDA device is available"));
      }
      if (device.index < 0 || device.index >= at::detail::getCUDAHooks().deviceCount()) {
        return absl::InvalidArgumentError(
            absl::StrCat("device: ", device.ToString(), " does not exist"));
      }
      p.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device.index));
      break;
  }
  const bool cuda = p.device.is_cuda();
  switch (dtype) {
    case ComputeDType::kAuto:
      p.dtype = cuda ? c10::kBFloat16 : c10::kFloat;
      break;
    case ComputeDType::kFloat32:
      p.dtype = c10::kFloat;
      break;
    case ComputeDType::kBFloat16:
    case ComputeDType::kFloat16:
      if (!cuda) {
        return absl::InvalidArgumentError(
            absl::StrCat("dtype: ", AsAbsl(ComputeDTypeName(dtype)),
                         " is only supported on CUDA; use float32 on CPU"));
      }
      p.dtype = dtype == ComputeDType::kBFloat16 ? c10::kBFloat16 : c10::kHalf;
      break;
  }
  return p;
}

}  // namespace t2::model
