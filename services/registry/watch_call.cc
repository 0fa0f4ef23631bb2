#include "watch_call.h"

#include "absl/strings/str_cat.h"
#include "proto_convert.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/metadata_keys.h"
#include "t2/rpc/offloaded_call.h"
#include "t2/rpc/status.h"

namespace t2::registry {
namespace {

grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the registry is shutting down");
}

}  // namespace

WatchCall::WatchCall(const WatchDeps& deps, grpc::CallbackServerContext& context,
                     const v1::WatchRequest& request)
    : deps_(deps), context_(context), request_(request) {
  if (deps_.metrics != nullptr) deps_.metrics->WatchOpened();
  Submit(&WatchCall::Start);
}

void WatchCall::Submit(void (WatchCall::*task)()) {
  {
    std::lock_guard lock(mu_);
    ++tasks_;
  }
  const bool submitted = deps_.executor.TrySubmit([this, task] {
    const grpc::Status thrown = rpc::GuardHandler("registry", "Watch", [&] {
      (this->*task)();
      return grpc::Status::OK;
    });
    if (!thrown.ok()) End(thrown);
    std::optional<grpc::Status> finish;
    {
      std::lock_guard lock(mu_);
      --tasks_;
      finish = TakeFinish();
    }
    if (finish.has_value()) Finish(*finish);  // the last thing done with `this`
  });
  if (submitted) return;
  std::optional<grpc::Status> finish;
  {
    std::lock_guard lock(mu_);
    --tasks_;
    if (!end_.has_value()) end_ = rpc::ExecutorFull(deps_.executor, "registry", "Watch");
    finish = TakeFinish();
  }
  if (finish.has_value()) Finish(*finish);
}

std::optional<grpc::Status> WatchCall::TakeFinish() {
  if (!end_.has_value() || finished_ || writing_ || tasks_ > 0) return std::nullopt;
  finished_ = true;
  return end_;
}

void WatchCall::End(const grpc::Status& status) {
  std::optional<grpc::Status> finish;
  {
    std::lock_guard lock(mu_);
    if (!end_.has_value()) end_ = status;
    finish = TakeFinish();
  }
  if (finish.has_value()) Finish(*finish);
}

void WatchCall::Start() {
  if (request_.from_sequence() < 0) {
    return End(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("watch.from_sequence: ", request_.from_sequence(), " is negative")));
  }
  if (deps_.shutting_down) return End(ShuttingDown());
  const int64_t after =
      request_.from_sequence() > 0 ? request_.from_sequence() : deps_.store.LatestSequence();
  if (request_.from_sequence() > 0) {
    // A watcher resuming past what the log still keeps (or from another store) must resync:
    // OUT_OF_RANGE now, before the stream says it is established.
    absl::StatusOr<std::vector<store::Event>> kept = deps_.store.EventsSince(after, 1);
    if (absl::IsOutOfRange(kept.status())) return End(rpc::ToGrpc(kept.status()));
  }
  {
    std::lock_guard lock(mu_);
    after_ = after;
  }
  // Tells the client the watch is established: every change it makes from now on will be
  // streamed to it, even with from_sequence 0. Events since `after` that came before the
  // subscription are read by the first fetch.
  context_.AddInitialMetadata(rpc::kWatchEstablishedKey, absl::StrCat(after));
  StartSendInitialMetadata();
  subscription_ = deps_.store.Subscribe([this] { Changed(); });
  Fetch();
}

void WatchCall::Changed() {
  {
    std::lock_guard lock(mu_);
    if (end_.has_value()) return;
    if (tasks_ > 0 || writing_) {
      changed_ = true;  // the fetch in progress, or the one after these writes, reads it
      return;
    }
  }
  Submit(&WatchCall::Fetch);
}

void WatchCall::Fetch() {
  while (true) {
    int64_t after = 0;
    {
      std::lock_guard lock(mu_);
      if (end_.has_value()) return;
      changed_ = false;  // news from here on is noted again
      after = after_;
    }
    if (deps_.shutting_down || deps_.store.closed()) return End(ShuttingDown());
    absl::StatusOr<std::vector<store::Event>> events = deps_.store.EventsSince(after);
    if (!events.ok()) return End(rpc::ToGrpc(events.status()));
    {
      std::lock_guard lock(mu_);
      if (end_.has_value()) return;
      if (events->empty()) {
        if (changed_) continue;  // news came while reading: read again
        return;                  // the next change schedules a fetch
      }
      for (const store::Event& event : *events) {
        ToProto(event, &queue_.emplace_back());
        after_ = event.sequence;
      }
      out_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
    }
    StartWrite(&out_);
    return;
  }
}

void WatchCall::OnWriteDone(bool ok) {
  std::optional<grpc::Status> finish;
  bool write_next = false;
  bool fetch_next = false;
  {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok && !end_.has_value()) {
      end_ = grpc::Status(grpc::StatusCode::CANCELLED, "watch: the client went away");
    }
    if (end_.has_value()) {
      finish = TakeFinish();
    } else if (!queue_.empty()) {
      out_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = write_next = true;
    } else {
      fetch_next = true;  // the batch is written: more than a batch, or news meanwhile
    }
  }
  if (finish.has_value()) return Finish(*finish);
  if (write_next) return StartWrite(&out_);
  if (fetch_next) Submit(&WatchCall::Fetch);
}

void WatchCall::OnCancel() { End(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled")); }

void WatchCall::OnDone() {
  subscription_.reset();  // waits for a store callback in progress
  if (deps_.metrics != nullptr) deps_.metrics->WatchClosed();
  delete this;
}

}  // namespace t2::registry
