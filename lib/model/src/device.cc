#include "t2/model/device.h"

#include <ATen/Context.h>
#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"

namespace t2::model {

bool CudaAvailable() { return at::globalContext().hasCUDA() && at::detail::getCUDAHooks().deviceCount() > 0; }

absl::StatusOr<Placement> ResolveDevice(const std::string& device, const std::string& dtype) {
  Placement p;
  if (device == "auto") {
    p.device = CudaAvailable() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  } else if (device == "cpu") {
    p.device = c10::kCPU;
  } else if (device == "cuda" || absl::StartsWith(device, "cuda:")) {
    if (!CudaAvailable()) {
      return absl::FailedPreconditionError(absl::StrCat("device: ", device, " requested but no CUDA device is available"));
    }
    try {
      p.device = c10::Device(device == "cuda" ? std::string("cuda:0") : device);
    } catch (const c10::Error&) {
      return absl::InvalidArgumentError(absl::StrCat("device: cannot parse '", device, "'"));
    }
    if (p.device.index() >= at::detail::getCUDAHooks().deviceCount()) {
      return absl::InvalidArgumentError(absl::StrCat("device: ", device, " does not exist"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("device: '", device, "' is not one of auto, cpu, cuda, cuda:N"));
  }
  const bool cuda = p.device.is_cuda();
  if (dtype == "auto") {
    p.dtype = cuda ? c10::kBFloat16 : c10::kFloat;
  } else if (dtype == "float32") {
    p.dtype = c10::kFloat;
  } else if (dtype == "bfloat16" || dtype == "float16") {
    if (!cuda) {
      return absl::InvalidArgumentError(absl::StrCat("dtype: ", dtype, " is only supported on CUDA; use float32 on CPU"));
    }
    p.dtype = dtype == "bfloat16" ? c10::kBFloat16 : c10::kHalf;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("dtype: '", dtype, "' is not one of auto, float32, bfloat16, float16"));
  }
  return p;
}

}  // namespace t2::model
