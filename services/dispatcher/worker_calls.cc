#include "worker_calls.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/metadata_keys.h"
#include "t2/rpc/status.h"

namespace t2::dispatcher {
namespace {

using t2::v1::ScoreRequest;
using t2::v1::ScoreResponse;
using t2::v1::WorkerGenerateRequest;
using t2::v1::WorkerGenerateResponse;

// How often a waiting thread looks at the client's call for a cancellation: gRPC's sync
// server has no cancellation callback, and 20 ms is well under a token's time.
constexpr auto kPollInterval = std::chrono::milliseconds(20);

// Whether a finished call's UNAVAILABLE was the registry's outage rather than the worker's
// (t2/rpc/metadata_keys.h): the worker answered, so it stays in the pool.
bool IsRegistryOutage(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(rpc::kUnavailableCauseKey);
  return it != trailers.end() && it->second == rpc::kUnavailableCauseRegistry;
}

// Takes a worker that answered UNAVAILABLE out of rotation, unless the cause was the registry.
void ReportUnavailable(WorkerPool& pool, size_t index, const grpc::ClientContext& context) {
  if (IsRegistryOutage(context)) {
    LogWarning("a worker could not reach the registry; keeping it in the pool");
    return;
  }
  pool.ReportUnavailable(index);
}

// One Worker.Generate stream. It keeps itself alive from Start until OnDone has run, so the
// caller may drop its reference at any time; callbacks run on gRPC's threads.
class GenerateReactor final : public grpc::ClientReadReactor<WorkerGenerateResponse> {
 public:
  using OnMessage = std::function<void(WorkerGenerateResponse&&)>;
  using OnFinish = std::function<void(const grpc::Status&)>;

  static std::shared_ptr<GenerateReactor> Start(t2::v1::Worker::Stub* stub,
                                                const WorkerGenerateRequest& request,
                                                const CallScope& scope, OnMessage on_message,
                                                OnFinish on_finish) {
    std::shared_ptr<GenerateReactor> r(
        new GenerateReactor(std::move(on_message), std::move(on_finish)));
    r->self_ = r;
    scope.Apply(r->context_);
    r->request_ = request;
    stub->async()->Generate(&r->context_, &r->request_, r.get());
    r->StartRead(&r->response_);
    r->StartCall();
    return r;
  }

  void Cancel() { context_.TryCancel(); }
  // After on_finish: the call's context (its trailing metadata).
  const grpc::ClientContext& context() const { return context_; }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    on_message_(std::move(response_));
    response_.Clear();
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    // Last callback: release the self reference only after the caller has been told.
    std::shared_ptr<GenerateReactor> keep = std::move(self_);
    on_finish_(status);
  }

 private:
  GenerateReactor(OnMessage on_message, OnFinish on_finish)
      : on_message_(std::move(on_message)), on_finish_(std::move(on_finish)) {}

  grpc::ClientContext context_;
  WorkerGenerateRequest request_;
  WorkerGenerateResponse response_;
  OnMessage on_message_;
  OnFinish on_finish_;
  std::shared_ptr<GenerateReactor> self_;
};

// Messages of one stream, handed from gRPC's threads to the waiting handler thread.
struct StreamState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<WorkerGenerateResponse> messages;
  std::optional<grpc::Status> done;  // set after every message has been queued
};

bool CarriesAnswer(const WorkerGenerateResponse& m) {
  return !m.text().empty() || m.token_ids_size() > 0 ||
         m.finish_reason() != t2::v1::FINISH_REASON_UNSPECIFIED;
}

// Codes that mean "the worker broke", as opposed to a verdict on the request.
bool IsWorkerFailure(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::INTERNAL ||
         code == grpc::StatusCode::UNKNOWN || code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::DATA_LOSS;
}

// A unary callback call whose context and response outlive the caller's wait.
template <typename Response>
struct UnaryCall {
  grpc::ClientContext context;
  Response response;
  std::mutex mu;
  std::condition_variable cv;
  std::optional<grpc::Status> done;
};

// Starts `start(stub, context, response, on_done)` on a worker and waits, cancelling the call
// if the client goes away; UNAVAILABLE moves the call to another worker.
template <typename Response, typename StartFn>
absl::StatusOr<Response> UnaryWithRetry(WorkerPool& pool, const CallScope& scope,
                                        std::string_view what, StartFn start) {
  std::vector<size_t> tried;
  std::string last_error;
  while (true) {
    if (scope.cancelled()) return scope.CancelledStatus();
    std::optional<WorkerPool::Lease> lease = pool.Acquire(tried);
    if (!lease.has_value()) {
      return absl::UnavailableError(absl::StrCat("no worker could run ", AsAbsl(what),
                                                 tried.empty()
                                                     ? std::string(": no workers")
                                                     : absl::StrCat("; last error: ", last_error)));
    }
    auto call = std::make_shared<UnaryCall<Response>>();
    scope.Apply(call->context);
    start(lease->stub(), &call->context, &call->response, [call](const grpc::Status& s) {
      std::lock_guard lock(call->mu);
      call->done = s;
      call->cv.notify_all();
    });
    bool cancelled = false;
    {
      std::unique_lock lock(call->mu);
      while (!call->done.has_value()) {
        call->cv.wait_for(lock, kPollInterval);
        if (!cancelled && scope.cancelled()) {
          call->context.TryCancel();
          cancelled = true;
        }
      }
    }
    if (cancelled) return scope.CancelledStatus();
    const grpc::Status& status = *call->done;
    if (status.ok()) return std::move(call->response);
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      ReportUnavailable(pool, lease->index(), call->context);
      tried.push_back(lease->index());
      last_error = absl::StrCat(lease->address(), ": ", status.error_message());
      continue;
    }
    return rpc::FromGrpc(status);
  }
}

}  // namespace

absl::Status StreamGenerate(WorkerPool& pool, const WorkerGenerateRequest& request,
                            const CallScope& scope, const MessageSink& sink,
                            std::string* worker_address) {
  std::vector<size_t> tried;
  std::string last_error;
  while (true) {
    if (scope.cancelled()) return scope.CancelledStatus();
    std::optional<WorkerPool::Lease> lease = pool.Acquire(tried);
    if (!lease.has_value()) {
      return absl::UnavailableError(
          tried.empty()
              ? std::string("no workers")
              : absl::StrCat("no worker could take the request; last error: ", last_error));
    }
    auto state = std::make_shared<StreamState>();
    std::shared_ptr<GenerateReactor> reactor = GenerateReactor::Start(
        lease->stub(), request, scope,
        [state](WorkerGenerateResponse&& m) {
          std::lock_guard lock(state->mu);
          state->messages.push_back(std::move(m));
          state->cv.notify_all();
        },
        [state](const grpc::Status& s) {
          std::lock_guard lock(state->mu);
          state->done = s;
          state->cv.notify_all();
        });

    bool forwarded = false;  // something of this worker's answer reached the sink
    bool stopped = false;    // the sink asked to stop
    bool cancelled = false;  // the client cancelled
    grpc::Status status;
    while (true) {
      std::deque<WorkerGenerateResponse> batch;
      std::optional<grpc::Status> done;
      {
        std::unique_lock lock(state->mu);
        state->cv.wait_for(lock, kPollInterval,
                           [&] { return !state->messages.empty() || state->done.has_value(); });
        batch.swap(state->messages);
        done = state->done;
      }
      if (!cancelled && !stopped && scope.cancelled()) {
        reactor->Cancel();
        cancelled = true;
      }
      for (const WorkerGenerateResponse& m : batch) {
        if (cancelled || stopped || !CarriesAnswer(m)) continue;
        forwarded = true;
        if (!sink(m)) {
          stopped = true;
          reactor->Cancel();
        }
      }
      if (done.has_value()) {
        status = *done;
        break;
      }
    }
    if (cancelled) return scope.CancelledStatus();
    if (stopped) return absl::CancelledError("the client stopped reading");
    if (status.ok()) {
      if (worker_address != nullptr) *worker_address = lease->address();
      return absl::OkStatus();
    }
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !forwarded) {
      ReportUnavailable(pool, lease->index(), reactor->context());
      tried.push_back(lease->index());
      last_error = absl::StrCat(lease->address(), ": ", status.error_message());
      LogWarning(absl::StrCat("generate: worker ", last_error, "; trying another"));
      continue;
    }
    if (forwarded && IsWorkerFailure(status.error_code())) {
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
        ReportUnavailable(pool, lease->index(), reactor->context());
      }
      return absl::UnavailableError(
          absl::StrCat("worker ", lease->address(),
                       " failed after its answer had started: ", status.error_message()));
    }
    return rpc::FromGrpc(status);
  }
}

absl::StatusOr<ScoreResponse> Score(WorkerPool& pool, const ScoreRequest& request,
                                    const CallScope& scope) {
  return UnaryWithRetry<ScoreResponse>(
      pool, scope, "Score",
      [&request](t2::v1::Worker::Stub* stub, grpc::ClientContext* context, ScoreResponse* response,
                 std::function<void(grpc::Status)> done) {
        stub->async()->Score(context, &request, response, std::move(done));
      });
}

absl::StatusOr<t2::v1::WorkerInfo> FetchInfo(WorkerPool& pool, const CallScope& scope) {
  static const t2::v1::WorkerInfoRequest kRequest;
  return UnaryWithRetry<t2::v1::WorkerInfo>(
      pool, scope, "Info",
      [](t2::v1::Worker::Stub* stub, grpc::ClientContext* context, t2::v1::WorkerInfo* response,
         std::function<void(grpc::Status)> done) {
        stub->async()->Info(context, &kRequest, response, std::move(done));
      });
}

namespace {

struct Completion {
  size_t index;
  grpc::Status status;
};

struct BatchState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Completion> completions;

  void Push(size_t index, const grpc::Status& status) {
    std::lock_guard lock(mu);
    completions.push_back({index, status});
    cv.notify_all();
  }
};

struct ScoreHolder {
  grpc::ClientContext context;
  ScoreResponse response;
};

struct InFlight {
  WorkerPool::Lease lease;
  std::shared_ptr<GenerateReactor> generate = nullptr;  // one of these two
  std::shared_ptr<ScoreHolder> score = nullptr;

  void Cancel() {
    if (generate) generate->Cancel();
    if (score) score->context.TryCancel();
  }
  const grpc::ClientContext& context() const {
    return generate ? generate->context() : score->context;
  }
};

}  // namespace

absl::Status RunBatch(WorkerPool& pool, std::vector<BatchCall>& calls, const CallScope& scope,
                      const BatchOptions& options) {
  using Clock = std::chrono::steady_clock;
  const size_t n = calls.size();
  auto state = std::make_shared<BatchState>();
  std::deque<size_t> ready;
  for (size_t i = 0; i < n; ++i) ready.push_back(i);
  std::vector<int> attempts(n, 0);
  std::vector<Clock::time_point> not_before(n, Clock::time_point::min());
  std::map<size_t, InFlight> in_flight;
  size_t finished = 0;
  absl::Status failure;
  bool cancelling = false;
  const size_t max_in_flight = static_cast<size_t>(std::max(1, options.max_in_flight));

  auto cancel_all = [&](absl::Status why) {
    if (cancelling) return;
    cancelling = true;
    failure = std::move(why);
    for (auto& [index, call] : in_flight) call.Cancel();
  };

  while (true) {
    if (!cancelling && scope.cancelled()) cancel_all(scope.CancelledStatus());
    // Start what the window allows; calls in backoff go to the back of the line.
    const Clock::time_point now = Clock::now();
    for (size_t tries = ready.size(); !cancelling && tries > 0 && in_flight.size() < max_in_flight;
         --tries) {
      size_t i = ready.front();
      ready.pop_front();
      if (not_before[i] > now) {
        ready.push_back(i);
        continue;
      }
      std::optional<WorkerPool::Lease> lease = pool.Acquire();
      if (!lease.has_value()) {
        cancel_all(absl::UnavailableError("no workers"));
        break;
      }
      ++attempts[i];
      InFlight call{.lease = std::move(*lease)};
      if (auto* gen = std::get_if<WorkerGenerateRequest>(&calls[i].request)) {
        calls[i].text.clear();
        std::string* text = &calls[i].text;  // written only by this call's callbacks
        call.generate = GenerateReactor::Start(
            call.lease.stub(), *gen, scope,
            [text](WorkerGenerateResponse&& m) { text->append(m.text()); },
            [state, i](const grpc::Status& s) { state->Push(i, s); });
      } else {
        auto holder = std::make_shared<ScoreHolder>();
        scope.Apply(holder->context);
        call.score = holder;
        call.lease.stub()->async()->Score(
            &holder->context, &std::get<ScoreRequest>(calls[i].request), &holder->response,
            [state, i, holder](const grpc::Status& s) { state->Push(i, s); });
      }
      in_flight.emplace(i, std::move(call));
    }

    if (!cancelling && finished == n) break;
    if (cancelling && in_flight.empty()) break;

    std::deque<Completion> completions;
    {
      std::unique_lock lock(state->mu);
      state->cv.wait_for(lock, kPollInterval, [&] { return !state->completions.empty(); });
      completions.swap(state->completions);
    }
    for (Completion& c : completions) {
      auto it = in_flight.find(c.index);
      if (it == in_flight.end()) continue;
      InFlight call = std::move(it->second);
      in_flight.erase(it);
      if (cancelling) continue;
      if (c.status.ok()) {
        if (call.score) calls[c.index].scored = std::move(call.score->response);
        ++finished;
        continue;
      }
      const grpc::StatusCode code = c.status.error_code();
      const bool retryable =
          code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::RESOURCE_EXHAUSTED;
      if (retryable && attempts[c.index] < options.max_attempts) {
        if (code == grpc::StatusCode::UNAVAILABLE)
          ReportUnavailable(pool, call.lease.index(), call.context());
        not_before[c.index] =
            Clock::now() + std::chrono::milliseconds(50 << (attempts[c.index] - 1));
        ready.push_back(c.index);
        continue;
      }
      cancel_all(Annotate(rpc::FromGrpc(c.status), absl::StrCat("worker ", call.lease.address(),
                                                                " (batch call ", c.index, ")")));
    }
  }
  return failure;
}

}  // namespace t2::dispatcher
