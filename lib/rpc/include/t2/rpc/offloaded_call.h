// Handlers on gRPC's callback API whose bodies block (a registry fetch, a model call, the
// first pass): gRPC's callback threads must never block, so the body runs on a
// BoundedExecutor, and it learns of the client's cancellation (OnCancel) through a stop
// token instead of polling the call. The body runs in GuardHandler. When the executor has no
// room the call ends at once with RESOURCE_EXHAUSTED, so that a flood of calls costs bounded
// threads and memory.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_callback.h>

#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "t2/common/bounded_executor.h"

namespace t2::rpc {

using OffloadedBody = std::function<grpc::Status(std::stop_token stop)>;

// The reactor a unary callback handler returns: `body` runs on `executor` and its status
// finishes the call. `service` and `method` name the call in the guard's log ("worker",
// "Score").
grpc::ServerUnaryReactor* RunOffloaded(BoundedExecutor& executor, std::string service,
                                       std::string method, OffloadedBody body);

// One step of a streaming reactor whose work blocks (a disk read or write, a database
// commit): `step` runs on `executor`, in GuardHandler, and returns the status to finish the
// call with, or nullopt to go on. `then` runs next on the same thread with that outcome
// (INTERNAL if the step threw), or at once on this thread with RESOURCE_EXHAUSTED when the
// executor has no room. A reactor that runs one step at a time, and whose `then` starts the
// next read or write or calls Finish as its last act, touches its state from one thread at a
// time without a lock.
using StreamStep = std::function<std::optional<grpc::Status>()>;
using StreamStepThen = std::function<void(std::optional<grpc::Status>)>;
void RunStreamStep(BoundedExecutor& executor, std::string_view service, std::string_view method,
                   StreamStep step, StreamStepThen then);

// The reactor a server-streaming handler returns for a call refused before it began.
template <typename Response>
grpc::ServerWriteReactor<Response>* FinishedStream(const grpc::Status& status) {
  class Finished final : public grpc::ServerWriteReactor<Response> {
   public:
    void OnDone() override { delete this; }
  };
  auto* reactor = new Finished();
  reactor->Finish(status);
  return reactor;
}

// The status of a call the executor had no room for.
grpc::Status ExecutorFull(const BoundedExecutor& executor, std::string_view service,
                          std::string_view method);

}  // namespace t2::rpc
