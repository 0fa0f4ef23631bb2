// The names experts, aliases and mixtures go by: one grammar for the registry's store, the
// services and the t2 tool. A name is [a-z0-9][a-z0-9._-]{0,63}; "name@version" pins a
// version (a decimal >= 1). Errors are InvalidArgument and quote the offending text, cut to
// 80 printable characters (it may come from a request).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace t2::names {

bool IsValidName(std::string_view name);
// The error starts with `field` (e.g. "set_alias.alias").
absl::Status CheckName(std::string_view field, std::string_view name);

struct NameVersion {
  std::string name;
  int64_t version = 0;  // 0: none given
};
// "name" or "name@version". The error starts with `field`.
absl::StatusOr<NameVersion> ParseNameVersion(std::string_view field, std::string_view text);

// `value` in single quotes, fit for an error message.
std::string Quoted(std::string_view value);

}  // namespace t2::names
