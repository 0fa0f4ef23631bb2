// How a t2 subcommand reports an error: "t2 <command>: <message>" on stderr, then the exit
// status it returns (commands.h: 1 failure, 2 bad usage).
#pragma once

#include <iostream>
#include <string_view>

#include "absl/status/status.h"
#include "t2/common/status.h"

namespace t2::cli {

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

inline int ExitWith(std::string_view command, absl::string_view message, int exit_code) {
  std::cerr << "t2 " << command << ": " << message << "\n";
  return exit_code;
}
inline int ExitWith(std::string_view command, const absl::Status& status, int exit_code) {
  return ExitWith(command, status.message(), exit_code);
}

// A bad flag value or input file, as the Status a parser returns: exit 2 once it reaches main.
inline absl::Status UsageError(std::string_view message) {
  return absl::InvalidArgumentError(AsAbsl(message));
}

}  // namespace t2::cli
