// Dispatcher.Generate and Dispatcher.GenerateStream on gRPC's callback API. A call's first
// pass runs on the handler executor (it may wait for a worker's classification and for the
// registry); then a GenerateRelay passes the worker's messages on as they come, on gRPC's
// threads: no thread waits on a generation once its first pass is done, and the client's
// cancellation (OnCancel) reaches the first pass and the worker call through one stop token.
//
// A stream has one write in flight at a time; what arrives meanwhile is merged into the next
// message (a slow reader gets fewer, longer messages, and the answer is all there is to hold).
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_callback.h>

#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>

#include "absl/time/time.h"
#include "dispatcher_metrics.h"
#include "first_pass.h"
#include "t2/common/bounded_executor.h"
#include "t2/v1/dispatcher.grpc.pb.h"
#include "worker_calls.h"
#include "worker_pool.h"

namespace t2::dispatcher {

// What a call needs from the service; every reference outlives the call.
struct GenerateDeps {
  WorkerPool& pool;
  const FirstPassRunner& first_pass;
  BoundedExecutor& executor;
  DispatcherMetrics* metrics;  // null: not recorded
};

// Each call starts itself on construction and deletes itself when gRPC is done with it (OnDone).
class GenerateCall final : public grpc::ServerUnaryReactor {
 public:
  GenerateCall(const GenerateDeps& deps, grpc::CallbackServerContext& context,
               const t2::v1::GenerateRequest& request, t2::v1::GenerateResponse& response);

  void OnCancel() override { stop_.request_stop(); }
  void OnDone() override { delete this; }

 private:
  void RunFirstPass();                                                      // on the executor
  void OnRelayDone(const absl::Status& status, const std::string& worker);  // a gRPC thread
  void End(const grpc::Status& status);  // the last thing done with `this`

  const GenerateDeps deps_;
  grpc::CallbackServerContext& context_;
  const t2::v1::GenerateRequest& request_;
  t2::v1::GenerateResponse& response_;  // the relay's sink appends, one message at a time
  const absl::Time start_ = absl::Now();
  DispatcherMetrics::Call call_;
  std::stop_source stop_;
};

class GenerateStreamCall final : public grpc::ServerWriteReactor<t2::v1::GenerateStreamResponse> {
 public:
  GenerateStreamCall(const GenerateDeps& deps, grpc::CallbackServerContext& context,
                     const t2::v1::GenerateRequest& request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override { stop_.request_stop(); }
  void OnDone() override { delete this; }

 private:
  // On the executor: validation and the first pass, then the first pass's message.
  void RunFirstPass();
  // The relay's sink and its end (gRPC threads).
  bool Pass(const t2::v1::WorkerGenerateResponse& message);
  // Starts writing out_ (mu_ not held: gRPC may run OnWriteDone on this thread).
  void Write();
  void OnRelayDone(const absl::Status& status);
  // Records the call and finishes it: the last thing done with `this`.
  void End(const grpc::Status& status);

  const GenerateDeps deps_;
  grpc::CallbackServerContext& context_;
  const t2::v1::GenerateRequest& request_;
  const absl::Time start_ = absl::Now();
  DispatcherMetrics::Call call_;  // written by the first pass, read by End after it
  std::stop_source stop_;

  std::mutex mu_;
  t2::v1::GenerateStreamResponse out_;           // guarded by mu_: the message gRPC is writing
  bool writing_ = false;                         // guarded by mu_
  t2::v1::GenerateStreamResponse pending_;       // guarded by mu_: arrived while writing
  bool has_pending_ = false;                     // guarded by mu_
  std::optional<grpc::Status> end_after_write_;  // guarded by mu_: the relay ended meanwhile
  std::shared_ptr<GenerateRelay> relay_;         // guarded by mu_: set once the head is written
};

}  // namespace t2::dispatcher
