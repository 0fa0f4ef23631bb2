// What a dispatcher handler's downstream calls inherit from the client's call: its deadline
// (every worker and registry call gets it) and its cancellation (a handler that sees the
// client gone cancels the worker call it is waiting on).
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <chrono>

#include "absl/status/status.h"

namespace t2::dispatcher {

struct CallScope {
  using Clock = std::chrono::system_clock;

  Clock::time_point deadline = Clock::time_point::max();  // max(): none
  const grpc::ServerContext* server = nullptr;            // nullptr: nobody can cancel

  static CallScope From(const grpc::ServerContext& context);

  // The client cancelled, its deadline passed, or the server is shutting the call down.
  bool cancelled() const;
  // What to return once cancelled(): DEADLINE_EXCEEDED or CANCELLED.
  absl::Status CancelledStatus() const;
  // The client's deadline, or `cap` from now if that is sooner (registry lookups should not
  // hang a request for as long as the client is willing to wait for tokens).
  Clock::time_point Capped(std::chrono::milliseconds cap) const;
  // Sets the client's deadline on a downstream call.
  void Apply(grpc::ClientContext& context) const;
};

}  // namespace t2::dispatcher
