// Calls from the dispatcher to workers, with the pool's choice and retry rules.
//
// Retry rule for a generation a client sees: the request moves to another worker only when
// the worker failed with UNAVAILABLE before anything of its answer reached the caller. Once
// text has been passed on, a worker failure is UNAVAILABLE to the client: it is never
// restarted elsewhere, which would repeat tokens. Other worker errors (INVALID_ARGUMENT,
// RESOURCE_EXHAUSTED, ...) are returned unchanged.
//
// Worker calls use gRPC's callback API so that the calling thread can wait with an eye on
// the client (cancelling the worker call when the client goes away) and so that a batch
// (a CEM generation) can have thousands of calls in flight without a thread each.
#pragma once

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "call_scope.h"
#include "t2/v1/worker.grpc.pb.h"
#include "worker_pool.h"

namespace t2::dispatcher {

// Called on the caller's thread for each worker message that carries text, tokens or the
// finish reason (messages with none of these are dropped, so a retry stays possible until
// the first real one). Returns false to stop (the client went away): the worker call is
// cancelled and StreamGenerate returns CANCELLED.
using MessageSink = std::function<bool(const t2::v1::WorkerGenerateResponse&)>;

// Runs one Worker.Generate to completion. `worker_address` (optional) receives the address
// of the worker that produced the answer.
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
