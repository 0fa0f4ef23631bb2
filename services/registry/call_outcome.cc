#include "call_outcome.h"

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/common/status.h"

namespace t2::registry {

void ReportOutcome(std::string_view method, const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      LogError(absl::StrCat("registry ", AsAbsl(method), ": ", status.error_message()));
      break;
    default:
      break;
  }
}

}  // namespace t2::registry
