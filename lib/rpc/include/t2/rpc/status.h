// absl::Status <-> grpc::Status. The two share the canonical code numbering, so the mapping
// is one to one; handlers return ToGrpc(status) and clients turn replies back with FromGrpc.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace t2::rpc {

grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace t2::rpc
