// `s` without its leading and trailing ASCII whitespace, for the answer and label parsers.
#pragma once

#include <string_view>

#include "absl/strings/ascii.h"
#include "t2/common/status.h"

namespace t2::adapt {

inline std::string_view StripWhitespace(std::string_view s) {
  const absl::string_view stripped = absl::StripAsciiWhitespace(AsAbsl(s));
  return {stripped.data(), stripped.size()};
}

}  // namespace t2::adapt
