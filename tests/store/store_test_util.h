// Status matchers for the store tests.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace t2::store::testing {

inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// The status has `code` and its message contains `substring`.
MATCHER_P2(StatusIs, code, substring, "") {
  const absl::Status& status = StatusOf(arg);
  *result_listener << "which is " << status;
  return status.code() == code &&
         std::string(status.message()).find(std::string(substring)) != std::string::npos;
}

MATCHER(IsOk, "") {
  const absl::Status& status = StatusOf(arg);
  *result_listener << "which is " << status;
  return status.ok();
}

}  // namespace t2::store::testing
