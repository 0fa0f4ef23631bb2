// Following the registry's change log (Registry.Watch) for as long as a service runs: the
// one loop the worker's expert cache and the dispatcher's resolver share.
//
// It reconnects with backoff (rpc::ReconnectBackoff) and resumes after the last sequence it
// saw, or after the sequence the registry announced when it subscribed the stream
// (rpc::WatchStartSequence), so that a registry restart loses no change. When the registry
// no longer keeps that range (OUT_OF_RANGE) it goes on from now. Free of LibTorch.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "t2/v1/registry.grpc.pb.h"

namespace t2::registry {

class EventWatch {
 public:
  // Called on the watch's own thread, one at a time, with no lock of the watch held.
  struct Callbacks {
    // A stream is about to open; what was cached may have changed while none was open.
    std::function<void()> connecting;
    // The registry has subscribed the stream: from here on no change is missed, so answers
    // may be cached. (A failed call never gets here.)
    std::function<void()> established;
    std::function<void(const t2::v1::RegistryEvent&)> event;
    // The stream ended (the registry went away, restarted or dropped the range); `stopping`
    // when the watch itself is being stopped.
    std::function<void(const grpc::Status&, bool stopping)> ended;
  };
  struct Options {
    std::chrono::milliseconds first_backoff{100};
    std::chrono::milliseconds max_backoff{10'000};
    // The log line at the start of an outage says what the service does meanwhile.
    std::string while_down = "changes are not followed until it reconnects";
  };

  EventWatch(std::shared_ptr<grpc::Channel> registry, Callbacks callbacks, Options options);
  ~EventWatch();  // cancels the stream and joins the thread
  EventWatch(const EventWatch&) = delete;
  EventWatch& operator=(const EventWatch&) = delete;

  void Start();  // idempotent
  // Between `established` and `ended`.
  bool watching() const;

 private:
  void Loop();
  // One stream, opened after `last_sequence_`; returns how it ended.
  grpc::Status Follow(grpc::ClientContext& context, bool& delivered);

  std::unique_ptr<t2::v1::Registry::Stub> stub_;
  const Callbacks callbacks_;
  const Options options_;
  int64_t last_sequence_ = 0;  // the watch thread's own; 0: from now on

  mutable std::mutex mu_;  // guards the four below
  bool stopping_ = false;
  bool watching_ = false;
  grpc::ClientContext* context_ = nullptr;  // the open stream, to cancel on stop
  std::condition_variable stop_cv_;
  std::thread thread_;
};

}  // namespace t2::registry
