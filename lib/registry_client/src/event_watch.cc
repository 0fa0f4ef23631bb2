#include "t2/registry_client/event_watch.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/metadata_keys.h"
#include "t2/rpc/reconnect_backoff.h"

namespace t2::registry {

EventWatch::EventWatch(std::shared_ptr<grpc::Channel> registry, Callbacks callbacks,
                       Options options)
    : stub_(t2::v1::Registry::NewStub(std::move(registry))),
      callbacks_(std::move(callbacks)),
      options_(std::move(options)) {}

EventWatch::~EventWatch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void EventWatch::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!thread_.joinable() && !stopping_) thread_ = std::thread([this] { Loop(); });
}

bool EventWatch::watching() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watching_;
}

grpc::Status EventWatch::Follow(grpc::ClientContext& context, bool& delivered) {
  t2::v1::WatchRequest request;
  request.set_from_sequence(last_sequence_);  // after a reconnect: what was missed meanwhile
  auto reader = stub_->Watch(&context, request);
  // Trusted only once the registry says it has subscribed this stream: a change made between
  // opening the call and that moment would never be streamed. The announced sequence is also
  // where a reconnect resumes, even when no event came before the registry went away.
  reader->WaitForInitialMetadata();
  if (auto start = rpc::WatchStartSequence(context); start.has_value()) {
    last_sequence_ = std::max(last_sequence_, *start);
    {
      std::lock_guard<std::mutex> lock(mu_);
      watching_ = true;
    }
    if (callbacks_.established) callbacks_.established();
  }
  t2::v1::RegistryEvent event;
  while (reader->Read(&event)) {
    delivered = true;
    last_sequence_ = std::max(last_sequence_, event.sequence());
    if (callbacks_.event) callbacks_.event(event);
  }
  return reader->Finish();
}

void EventWatch::Loop() {
  rpc::ReconnectBackoff backoff(options_.first_backoff, options_.max_backoff);
  while (true) {
    grpc::ClientContext context;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      context_ = &context;
    }
    if (callbacks_.connecting) callbacks_.connecting();
    const auto opened = std::chrono::steady_clock::now();
    bool delivered = false;
    const grpc::Status status = Follow(context, delivered);
    bool stopping = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      context_ = nullptr;
      watching_ = false;
      stopping = stopping_;
    }
    if (callbacks_.ended) callbacks_.ended(status, stopping);
    if (stopping) return;
    if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE) {
      // The registry no longer keeps what was missed (or is another store): go on from now.
      LogWarning(absl::StrCat("registry watch: ", status.error_message(), "; resuming from now"));
      last_sequence_ = 0;
      continue;
    }
    // A stream that fails at once is a registry still down: back off, and log an outage once.
    const auto wait = backoff.Ended(delivered || std::chrono::steady_clock::now() - opened >
                                                     std::chrono::seconds(1));
    if (wait.outage_began) {
      LogWarning(absl::StrCat("registry watch ended (", status.error_message(), "); ",
                              options_.while_down));
    }
    std::unique_lock<std::mutex> lock(mu_);
    stop_cv_.wait_for(lock, wait.delay, [&] { return stopping_; });
  }
}

}  // namespace t2::registry
