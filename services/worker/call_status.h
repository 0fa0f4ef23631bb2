// What the worker's Generate and Score calls share about their gRPC call: the deadline the
// scheduler gets, and the status of an expert that could not be made ready.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "t2/rpc/metadata_keys.h"
#include "t2/rpc/status.h"

namespace t2::worker {

// An expert that could not be made ready. UNAVAILABLE here is the registry's (the worker
// itself is answering): it is marked so, for the dispatcher's routing (t2/rpc/metadata_keys.h).
inline grpc::Status AdapterFailed(grpc::ServerContextBase& context, const absl::Status& status) {
  if (absl::IsUnavailable(status)) {
    context.AddTrailingMetadata(rpc::kUnavailableCauseKey, rpc::kUnavailableCauseRegistry);
  }
  return rpc::ToGrpc(status);
}

// The call's deadline for the scheduler (gRPC's "none" is the far future).
inline absl::Time DeadlineOf(const grpc::ServerContextBase& context) {
  auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::now() + std::chrono::hours(24 * 365))
    return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace t2::worker
