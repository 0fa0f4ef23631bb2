// Calls from the dispatcher to workers, with the pool's choice and retry rules.
//
// Retry rule for a generation a client sees: the request moves to another worker only when
// the worker failed with UNAVAILABLE before anything of its answer reached the caller. Once
// text has been passed on, a worker failure is UNAVAILABLE to the client: it is never
// restarted elsewhere, which would repeat tokens. Other worker errors (INVALID_ARGUMENT,
// RESOURCE_EXHAUSTED, ...) are returned unchanged.
//
// Worker calls use gRPC's callback API: no thread waits on a worker's stream (a relay passes
// each message on from gRPC's threads), a batch (a CEM generation) can have thousands of calls
// in flight, and the client's cancellation reaches the worker call through the CallScope's stop
// token at once instead of being polled for.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "call_scope.h"
#include "t2/v1/worker.grpc.pb.h"
#include "worker_pool.h"

namespace t2::dispatcher {

// One Worker.Generate passed on message by message under the retry rule above, without a
// thread of its own: everything runs on gRPC's callback threads.
class GenerateRelay : public std::enable_shared_from_this<GenerateRelay> {
 public:
  // Called on a gRPC thread for each worker message that carries text, tokens or the finish
  // reason, one at a time (messages with none of these are dropped, so a retry stays possible
  // until the first real one). Returns false when the client stopped reading: the worker call
  // is cancelled and the relay ends with CANCELLED. The worker's stream is always read on (a
  // sink that cannot pass a message on at once keeps it: an answer is small, and a held
  // stream could lose its last messages to the call's end).
  using Sink = std::function<bool(const t2::v1::WorkerGenerateResponse&)>;
  // Called exactly once, when the call is over: its status and the address of the worker
  // that answered (empty unless OK). CANCELLED / DEADLINE_EXCEEDED once the scope is.
  using Done = std::function<void(const absl::Status& status, const std::string& worker)>;

  // Made before it begins, so that an owner can hold it before its first callback runs.
  static std::shared_ptr<GenerateRelay> Create(WorkerPool& pool,
                                               t2::v1::WorkerGenerateRequest request,
                                               CallScope scope, Sink sink, Done done);
  ~GenerateRelay();

  // Starts the worker call (or calls Done at once: no workers, or the scope already stopped).
  void Begin();

  // Cancels the worker call; Done gets `why` unless the call had already ended.
  void Stop(absl::Status why);

 private:
  struct Attempt;
  GenerateRelay(WorkerPool& pool, t2::v1::WorkerGenerateRequest request, CallScope scope, Sink sink,
                Done done);
  void TryNextWorker();
  void OnMessage(const t2::v1::WorkerGenerateResponse& message);
  void OnWorkerDone(const std::shared_ptr<Attempt>& attempt, const grpc::Status& status);
  void Finish(const absl::Status& status, const std::string& worker = "");

  WorkerPool& pool_;
  const t2::v1::WorkerGenerateRequest request_;
  const CallScope scope_;
  const Sink sink_;
  Done done_;
  std::mutex mu_;
  std::shared_ptr<Attempt> attempt_;  // guarded by mu_: the worker call in progress
  std::vector<size_t> tried_;         // guarded by mu_: workers that were UNAVAILABLE
  std::string last_error_;            // guarded by mu_
  std::optional<absl::Status> stop_;  // guarded by mu_: why Stop was called
  bool finished_ = false;             // guarded by mu_: Done has been called
  std::optional<std::stop_callback<std::function<void()>>> on_scope_stop_;
};

// Called for each message as GenerateRelay's sink is (on a gRPC thread, one at a time).
// Returns false to stop (the client went away): the worker call is cancelled and
// StreamGenerate returns CANCELLED.
using MessageSink = GenerateRelay::Sink;

// Runs one Worker.Generate to completion, waiting for it on the calling thread (a handler
// executor's: GENERATE-mode classification). `worker_address` (optional) receives the
// address of the worker that produced the answer.
absl::Status StreamGenerate(WorkerPool& pool, const t2::v1::WorkerGenerateRequest& request,
                            const CallScope& scope, const MessageSink& sink,
                            std::string* worker_address = nullptr);

// One Worker.Score; UNAVAILABLE moves it to another worker (scoring has no partial answer).
absl::StatusOr<t2::v1::ScoreResponse> Score(WorkerPool& pool, const t2::v1::ScoreRequest& request,
                                            const CallScope& scope);

// Worker.Info of any serving worker.
absl::StatusOr<t2::v1::WorkerInfo> FetchInfo(WorkerPool& pool, const CallScope& scope);

// One call of a batch: its request, and after RunBatch its result.
struct BatchCall {
  std::variant<t2::v1::WorkerGenerateRequest, t2::v1::ScoreRequest> request;
  std::string text = {};              // Generate: the whole answer
  t2::v1::ScoreResponse scored = {};  // Score
};

struct BatchOptions {
  int max_in_flight = 64;  // calls started and not finished, across the pool
  int max_attempts = 5;    // per call, for UNAVAILABLE and RESOURCE_EXHAUSTED
};

// Runs every call, keeping up to max_in_flight going at once on the least busy workers.
// UNAVAILABLE and RESOURCE_EXHAUSTED (a full worker queue) are retried with a short backoff;
// any other error, or a call out of attempts, cancels the rest and is returned (annotated
// with which call failed). CANCELLED / DEADLINE_EXCEEDED when the scope is cancelled.
absl::Status RunBatch(WorkerPool& pool, std::vector<BatchCall>& calls, const CallScope& scope,
                      const BatchOptions& options);

}  // namespace t2::dispatcher
