// What the registry logs of a call's outcome: server-side trouble (INTERNAL, DATA_LOSS,
// UNKNOWN, RESOURCE_EXHAUSTED) is logged with the method; a client's mistakes are only
// reported back to it.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

namespace t2::registry {

void ReportOutcome(std::string_view method, const grpc::Status& status);

}  // namespace t2::registry
