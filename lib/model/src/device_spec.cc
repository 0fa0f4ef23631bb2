#include "t2/model/device_spec.h"

#include <charconv>
#include <limits>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "t2/common/status.h"

namespace t2::model {

absl::StatusOr<DeviceSpec> DeviceSpec::Parse(std::string_view text) {
  if (text == "auto") return Auto();
  if (text == "cpu") return Cpu();
  if (text == "cuda") return Cuda(0);
  constexpr std::string_view kCuda = "cuda:";
  if (text.starts_with(kCuda) && text.size() > kCuda.size()) {
    // Decimal digits only, all of them: an unsigned from_chars takes no sign, space or base
    // prefix.
    const char* end = text.data() + text.size();
    unsigned index = 0;
    auto [stop, ec] = std::from_chars(text.data() + kCuda.size(), end, index);
    if (ec == std::errc() && stop == end && index <= std::numeric_limits<int>::max()) {
      return Cuda(static_cast<int>(index));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("must be one of auto, cpu, cuda, cuda:N, got '", AsAbsl(text), "'"));
}

std::string DeviceSpec::ToString() const {
  switch (kind) {
    case Kind::kAuto:
      return "auto";
    case Kind::kCpu:
      return "cpu";
    case Kind::kCuda:
      return absl::StrCat("cuda:", index);
  }
  return "auto";
}

std::string_view ComputeDTypeName(ComputeDType dtype) {
  switch (dtype) {
    case ComputeDType::kAuto:
      return "auto";
    case ComputeDType::kFloat32:
      return "float32";
    case ComputeDType::kBFloat16:
      return "bfloat16";
    case ComputeDType::kFloat16:
      return "float16";
  }
  return "auto";
}

absl::StatusOr<ComputeDType> ParseComputeDType(std::string_view text) {
  for (ComputeDType dtype : kComputeDTypes) {
    if (ComputeDTypeName(dtype) == text) return dtype;
  }
  // The names come from the table, so a new dtype cannot be left out of the message.
  const std::string names =
      absl::StrJoin(kComputeDTypes, ", ",
                    [](std::string* out, ComputeDType d) { out->append(ComputeDTypeName(d)); });
  return absl::InvalidArgumentError(
      absl::StrCat("must be one of ", names, ", got '", AsAbsl(text), "'"));
}

}  // namespace t2::model
