// What a dispatcher handler's downstream calls inherit from the client's call: its deadline
// (every worker and registry call gets it) and its cancellation, as a stop token that the
// call's reactor triggers from OnCancel (a wait on a worker call registers a
// std::stop_callback that cancels it, so nothing polls the client's call).
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <chrono>
#include <stop_token>

#include "absl/status/status.h"

namespace t2::dispatcher {

struct CallScope {
  using Clock = std::chrono::system_clock;

  Clock::time_point deadline = Clock::time_point::max();  // max(): none
  std::stop_token stop = {};  // stop requested: the client cancelled or the server shut the call

  // The client's deadline from `context`; `stop` from the reactor serving it.
  static CallScope From(const grpc::ServerContextBase& context, std::stop_token stop);

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
