// The one guard every service's RPC handlers run in. An exception escaping a synchronous
// gRPC handler terminates the process, taking every other client's call with it; a
// std::bad_alloc from a large request or a bug in one code path must cost only that call.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "absl/functional/function_ref.h"

namespace t2::rpc {

// Runs `body`. An exception becomes INTERNAL with a generic "<method>: internal error": its
// text may name server files or internals, so it goes to the log (with the method) and never
// to the client. "<service> <method>" is what the log and the client see, e.g. "registry
// PublishExpert"; nothing is built from them unless the body throws.
grpc::Status GuardHandler(std::string_view service, std::string_view method,
                          absl::FunctionRef<grpc::Status()> body);

}  // namespace t2::rpc
