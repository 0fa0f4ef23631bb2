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

}  // namespace

// One Worker.Generate stream. It keeps itself alive from Begin until OnDone has run, so the
// caller may drop its reference at any time; callbacks run on gRPC's threads. Not in the
// anonymous namespace: GenerateRelay::Attempt, a member of a class the header declares, holds one.
class GenerateReactor final : public grpc::ClientReadReactor<WorkerGenerateResponse>,
                              public std::enable_shared_from_this<GenerateReactor> {
 public:
  using OnMessage = std::function<void(WorkerGenerateResponse&&)>;
  using OnFinish = std::function<void(const grpc::Status&)>;

  // Made before it starts, so that an owner can hold it before its first callback runs.
  static std::shared_ptr<GenerateReactor> Create(OnMessage on_message, OnFinish on_finish) {
    return std::shared_ptr<GenerateReactor>(
        new GenerateReactor(std::move(on_message), std::move(on_finish)));
  }

  void Begin(t2::v1::Worker::Stub* stub, const WorkerGenerateRequest& request,
             const CallScope& scope) {
    self_ = shared_from_this();
    scope.Apply(context_);
    request_ = request;
    stub->async()->Generate(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
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
    // Last callback: release the self reference only after the caller has been told. The
    // callbacks go first: what they hold (often an owner holding this reactor) is let go.
    std::shared_ptr<GenerateReactor> keep = std::move(self_);
    OnFinish finish = std::move(on_finish_);
    on_message_ = nullptr;
    finish(status);
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

namespace {

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
    {
      // The client's cancellation cancels the worker call, which then ends at once.
      std::stop_callback cancel(scope.stop, [&call] { call->context.TryCancel(); });
      std::unique_lock lock(call->mu);
      call->cv.wait(lock, [&] { return call->done.has_value(); });
    }
    if (scope.stop.stop_requested()) return scope.CancelledStatus();
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

struct GenerateRelay::Attempt {
  // Ended (reset) as soon as the worker call is over, on the thread that hears so: the
  // reactor's callbacks, which hold this Attempt, are let go by gRPC only later, after the
  // client may already have its answer and sent the next request.
  std::optional<WorkerPool::Lease> lease;
  std::shared_ptr<GenerateReactor> reactor = nullptr;
  bool forwarded = false;  // guarded by the relay's mu_: something of its answer reached the sink
};

GenerateRelay::GenerateRelay(WorkerPool& pool, WorkerGenerateRequest request, CallScope scope,
                             Sink sink, Done done)
    : pool_(pool),
      request_(std::move(request)),
      scope_(std::move(scope)),
      sink_(std::move(sink)),
      done_(std::move(done)) {}

GenerateRelay::~GenerateRelay() = default;

std::shared_ptr<GenerateRelay> GenerateRelay::Create(WorkerPool& pool,
                                                     WorkerGenerateRequest request, CallScope scope,
                                                     Sink sink, Done done) {
  return std::shared_ptr<GenerateRelay>(new GenerateRelay(
      pool, std::move(request), std::move(scope), std::move(sink), std::move(done)));
}

void GenerateRelay::Begin() {
  // Runs at once when the client has already gone. Held weakly: the callback is a member.
  std::weak_ptr<GenerateRelay> weak = weak_from_this();
  on_scope_stop_.emplace(scope_.stop, [weak] {
    if (std::shared_ptr<GenerateRelay> self = weak.lock())
      self->Stop(self->scope_.CancelledStatus());
  });
  TryNextWorker();
}

void GenerateRelay::TryNextWorker() {
  std::shared_ptr<Attempt> attempt;
  absl::Status failed;
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    std::optional<WorkerPool::Lease> lease;
    if (stop_.has_value()) {
      failed = *stop_;  // stopped between two workers: nothing runs that needs cancelling
    } else if (lease = pool_.Acquire(tried_); !lease.has_value()) {
      failed = absl::UnavailableError(
          tried_.empty()
              ? std::string("no workers")
              : absl::StrCat("no worker could take the request; last error: ", last_error_));
    } else {
      attempt = std::make_shared<Attempt>(Attempt{.lease = std::move(*lease)});
      // The reactor's callbacks hold the relay until the worker call is over.
      std::shared_ptr<GenerateRelay> self = shared_from_this();
      attempt->reactor = GenerateReactor::Create(
          [self](WorkerGenerateResponse&& m) { self->OnMessage(m); },
          [self, attempt](const grpc::Status& s) { self->OnWorkerDone(attempt, s); });
      attempt_ = attempt;
    }
  }
  if (attempt == nullptr) {
    Finish(failed);
    return;
  }
  attempt->reactor->Begin(attempt->lease->stub(), request_, scope_);
}

void GenerateRelay::OnMessage(const WorkerGenerateResponse& message) {
  if (!CarriesAnswer(message)) return;
  {
    std::lock_guard lock(mu_);
    // Stopped: the worker call is being cancelled; what still arrives is dropped.
    if (stop_.has_value()) return;
    attempt_->forwarded = true;
  }
  if (!sink_(message)) Stop(absl::CancelledError("the client stopped reading"));
}

void GenerateRelay::Stop(absl::Status why) {
  std::shared_ptr<Attempt> attempt;
  {
    std::lock_guard lock(mu_);
    if (finished_ || stop_.has_value()) return;
    stop_ = std::move(why);
    attempt = attempt_;
  }
  // The worker call ends with CANCELLED, and OnWorkerDone reports `why`.
  if (attempt != nullptr) attempt->reactor->Cancel();
}

void GenerateRelay::OnWorkerDone(const std::shared_ptr<Attempt>& attempt,
                                 const grpc::Status& status) {
  const size_t index = attempt->lease->index();
  const std::string address = attempt->lease->address();
  attempt->lease.reset();  // the worker is no longer busy for us
  const grpc::ClientContext& context = attempt->reactor->context();
  std::optional<absl::Status> stopped;
  bool forwarded = false;
  {
    std::lock_guard lock(mu_);
    stopped = stop_;
    forwarded = attempt->forwarded;
  }
  if (stopped.has_value()) return Finish(*stopped);
  if (status.ok()) return Finish(absl::OkStatus(), address);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !forwarded) {
    ReportUnavailable(pool_, index, context);
    const std::string error = absl::StrCat(address, ": ", status.error_message());
    LogWarning(absl::StrCat("generate: worker ", error, "; trying another"));
    {
      std::lock_guard lock(mu_);
      tried_.push_back(index);
      last_error_ = error;
    }
    return TryNextWorker();
  }
  if (forwarded && IsWorkerFailure(status.error_code())) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE)
      ReportUnavailable(pool_, index, context);
    return Finish(absl::UnavailableError(absl::StrCat(
        "worker ", address, " failed after its answer had started: ", status.error_message())));
  }
  Finish(rpc::FromGrpc(status));
}

void GenerateRelay::Finish(const absl::Status& status, const std::string& worker) {
  Done done;
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = true;
    done = std::move(done_);
    attempt_ = nullptr;
  }
  done(status, worker);
}

absl::Status StreamGenerate(WorkerPool& pool, const WorkerGenerateRequest& request,
                            const CallScope& scope, const MessageSink& sink,
                            std::string* worker_address) {
  struct Outcome {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::Status> status;
    std::string worker;
  };
  auto outcome = std::make_shared<Outcome>();
  std::shared_ptr<GenerateRelay> relay = GenerateRelay::Create(
      pool, request, scope, sink, [outcome](const absl::Status& status, const std::string& worker) {
        std::lock_guard lock(outcome->mu);
        outcome->status = status;
        outcome->worker = worker;
        outcome->cv.notify_all();
      });
  relay->Begin();
  // Bounded by the worker call: it carries the client's deadline, and the scope's stop
  // cancels it.
  std::unique_lock lock(outcome->mu);
  outcome->cv.wait(lock, [&] { return outcome->status.has_value(); });
  if (worker_address != nullptr && outcome->status->ok()) *worker_address = outcome->worker;
  return *outcome->status;
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
  std::condition_variable_any cv;  // waits also end on the scope's stop
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
        call.generate =
            GenerateReactor::Create([text](WorkerGenerateResponse&& m) { text->append(m.text()); },
                                    [state, i](const grpc::Status& s) { state->Push(i, s); });
        call.generate->Begin(call.lease.stub(), *gen, scope);
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

    // Wakes for a completion, for the client's cancellation (until the batch is cancelling:
    // then only the cancelled calls' completions matter) and when a call's backoff ends.
    std::optional<Clock::time_point> backoff_ends;
    if (!cancelling && in_flight.size() < max_in_flight) {
      for (size_t i : ready) {
        if (not_before[i] > now)
          backoff_ends = std::min(backoff_ends.value_or(not_before[i]), not_before[i]);
      }
    }
    std::deque<Completion> completions;
    {
      std::unique_lock lock(state->mu);
      auto completed = [&] { return !state->completions.empty(); };
      if (cancelling) {
        state->cv.wait(lock, completed);
      } else if (backoff_ends.has_value()) {
        state->cv.wait_until(lock, scope.stop, *backoff_ends, completed);
      } else {
        state->cv.wait(lock, scope.stop, completed);
      }
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
