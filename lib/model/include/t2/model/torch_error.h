// A LibTorch exception as a Status, for the libraries that call LibTorch (model, svf, engine,
// train): what was being done, then torch's own message without its C++ backtrace.
#pragma once

#include <c10/util/Exception.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::model {

inline absl::Status TorchError(std::string_view what, const c10::Error& e) {
  return absl::InternalError(absl::StrCat(AsAbsl(what), ": ", e.what_without_backtrace()));
}

}  // namespace t2::model
