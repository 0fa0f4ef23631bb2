// The device and compute dtype a user asks for (--device, --dtype, or options in code), parsed
// once where they enter. Free of LibTorch so that the engine's options and every command line
// can name them; ResolveDevice (device.h) turns them into LibTorch's types when a model loads,
// which is also where CUDA's presence is checked.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace t2::model {

struct DeviceSpec {
  enum class Kind { kAuto, kCpu, kCuda };
  Kind kind = Kind::kAuto;  // kAuto: CUDA when a device is visible, else the CPU
  int index = 0;            // the CUDA device's ordinal; 0 for the other kinds

  static DeviceSpec Auto() { return {}; }
  static DeviceSpec Cpu() { return {.kind = Kind::kCpu}; }
  static DeviceSpec Cuda(int index = 0) { return {.kind = Kind::kCuda, .index = index}; }

  // "auto", "cpu", "cuda" (ordinal 0) or "cuda:N". The error reads after a field name:
  // "must be one of auto, cpu, cuda, cuda:N, got 'tpu'".
  static absl::StatusOr<DeviceSpec> Parse(std::string_view text);
  // The text Parse reads back: "auto", "cpu", "cuda:N".
  std::string ToString() const;

  bool operator==(const DeviceSpec&) const = default;
};

// kAuto is float32 on the CPU and bfloat16 on CUDA.
enum class ComputeDType { kAuto, kFloat32, kBFloat16, kFloat16 };
inline constexpr std::array<ComputeDType, 4> kComputeDTypes = {
    ComputeDType::kAuto, ComputeDType::kFloat32, ComputeDType::kBFloat16, ComputeDType::kFloat16};

// "auto", "float32", "bfloat16", "float16".
std::string_view ComputeDTypeName(ComputeDType dtype);
// The inverse of ComputeDTypeName; the error reads after a field name, like DeviceSpec::Parse's.
absl::StatusOr<ComputeDType> ParseComputeDType(std::string_view text);

}  // namespace t2::model
