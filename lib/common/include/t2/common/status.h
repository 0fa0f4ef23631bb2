// Status helpers shared by every t2 library.
//
// Errors cross layers as absl::Status / absl::StatusOr (DESIGN.md). Debian's Abseil
// (20220623) predates abseil's own ASSIGN_OR_RETURN, so the project defines its own.
#pragma once

#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define T2_STATUS_CONCAT_INNER_(a, b) a##b
#define T2_STATUS_CONCAT_(a, b) T2_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function if not OK.
#define T2_RETURN_IF_ERROR(expr)                        \
  do {                                                  \
    ::absl::Status t2_status_ = (expr);                 \
    if (!t2_status_.ok()) return t2_status_;            \
  } while (0)

// `lhs` = value of `expr` (an absl::StatusOr<T>), or returns its error status.
//   T2_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
#define T2_ASSIGN_OR_RETURN(lhs, expr) \
  T2_ASSIGN_OR_RETURN_IMPL_(T2_STATUS_CONCAT_(t2_statusor_, __LINE__), lhs, expr)

#define T2_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

namespace t2 {

// Debian's Abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// which std::string_view does not convert to: wrap std::string_view before absl::StrCat.
inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

// Prefixes a status message with context, keeping the code: "loading x: <message>".
inline absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(AsAbsl(context), ": ", status.message()));
}

}  // namespace t2
