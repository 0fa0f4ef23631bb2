#include "call_scope.h"

#include <algorithm>

namespace t2::dispatcher {

CallScope CallScope::From(const grpc::ServerContext& context) {
  return CallScope{.deadline = context.deadline(), .server = &context};
}

bool CallScope::cancelled() const { return server != nullptr && server->IsCancelled(); }

absl::Status CallScope::CancelledStatus() const {
  if (deadline != Clock::time_point::max() && Clock::now() >= deadline) {
    return absl::DeadlineExceededError("the client's deadline passed");
  }
  return absl::CancelledError("the client cancelled the call");
}

CallScope::Clock::time_point CallScope::Capped(std::chrono::milliseconds cap) const {
  return std::min(deadline, Clock::now() + cap);
}

void CallScope::Apply(grpc::ClientContext& context) const {
  if (deadline != Clock::time_point::max()) context.set_deadline(deadline);
}

}  // namespace t2::dispatcher
