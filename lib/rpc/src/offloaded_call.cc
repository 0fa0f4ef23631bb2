#include "t2/rpc/offloaded_call.h"

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "t2/rpc/handler_guard.h"

namespace t2::rpc {
namespace {

// Deletes itself when gRPC is done with the call (OnDone, the last callback). The body
// touches it last when it calls Finish.
class OffloadedUnary final : public grpc::ServerUnaryReactor {
 public:
  void OnCancel() override { stop_.request_stop(); }
  void OnDone() override { delete this; }
  std::stop_token token() const { return stop_.get_token(); }

 private:
  std::stop_source stop_;
};

}  // namespace

grpc::Status ExecutorFull(const BoundedExecutor& executor, std::string_view service,
                          std::string_view method) {
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      absl::StrCat(AsAbsl(service), " ", AsAbsl(method), ": the server is busy (",
                                   executor.options().max_threads, " handler threads and ",
                                   executor.options().max_queue, " waiting calls); retry later"));
}

grpc::ServerUnaryReactor* RunOffloaded(BoundedExecutor& executor, std::string service,
                                       std::string method, OffloadedBody body) {
  auto* reactor = new OffloadedUnary();
  // gRPC keeps a Finish made before the handler has returned the reactor until it has.
  const bool submitted = executor.TrySubmit([reactor, service, method, body = std::move(body)] {
    const std::stop_token stop = reactor->token();
    reactor->Finish(GuardHandler(service, method, [&] { return body(stop); }));
  });
  if (!submitted) reactor->Finish(ExecutorFull(executor, service, method));
  return reactor;
}

void RunStreamStep(BoundedExecutor& executor, std::string_view service, std::string_view method,
                   StreamStep step, StreamStepThen then) {
  auto run = [service = std::string(service), method = std::string(method), step = std::move(step),
              then]() {
    std::optional<grpc::Status> outcome;
    const grpc::Status thrown = GuardHandler(service, method, [&] {
      outcome = step();
      return grpc::Status::OK;
    });
    if (!thrown.ok()) outcome = thrown;
    then(std::move(outcome));
  };
  if (!executor.TrySubmit(std::move(run))) then(ExecutorFull(executor, service, method));
}

}  // namespace t2::rpc
