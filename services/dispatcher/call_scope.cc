#include "call_scope.h"

#include <algorithm>

namespace t2::dispatcher {

CallScope CallScope::From(const grpc::ServerContextBase& context, std::stop_token stop) {
  return CallScope{.deadline = context.deadline(), .stop = std::move(stop)};
}

bool CallScope::cancelled() const {
  return stop.stop_requested() ||
         (deadline != Clock::time_point::max() && Clock::now() >= deadline);
}

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
