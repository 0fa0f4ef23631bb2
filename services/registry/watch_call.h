// One Registry.Watch stream on gRPC's callback API: no thread waits for changes. The store
// tells the call of each new event (ExpertStore::Subscribe); reading the events from the
// database runs on the registry's handler executor, and they are written one at a time from
// gRPC's threads. The client's cancellation (OnCancel) and the registry's shutdown end it.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "registry_metrics.h"
#include "t2/common/bounded_executor.h"
#include "t2/store/expert_store.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::registry {

// What a call needs from the service; every reference outlives the call.
struct WatchDeps {
  const store::ExpertStore& store;
  BoundedExecutor& executor;
  const std::atomic<bool>& shutting_down;
  RegistryMetrics* metrics;  // null: not recorded
};

// Starts itself on construction; deletes itself when gRPC is done with the call (OnDone).
class WatchCall final : public grpc::ServerWriteReactor<v1::RegistryEvent> {
 public:
  WatchCall(const WatchDeps& deps, grpc::CallbackServerContext& context,
            const v1::WatchRequest& request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // On the executor: the request checked, the stream established, the subscription made,
  // and the first fetch.
  void Start();
  // On the executor: the events after after_, queued and the first of them written.
  void Fetch();
  // The store's news (under its lock): a fetch is scheduled, or noted for after this one.
  void Changed();
  // Runs `task` on the executor, counted in tasks_ (the call is not finished while one runs).
  void Submit(void (WatchCall::*task)());
  // Ends the call with `status` (the first one wins) once no task or write is in progress.
  void End(const grpc::Status& status);
  // The status to Finish with now, if the call is ending and nothing of it runs. mu_ held.
  std::optional<grpc::Status> TakeFinish();

  const WatchDeps deps_;
  grpc::CallbackServerContext& context_;
  const v1::WatchRequest& request_;

  std::mutex mu_;
  int64_t after_ = 0;                    // guarded by mu_: the last event queued (or the start)
  std::deque<v1::RegistryEvent> queue_;  // guarded by mu_: fetched, not yet written
  v1::RegistryEvent out_;                // guarded by mu_: the message being written
  bool writing_ = false;                 // guarded by mu_
  int tasks_ = 0;                        // guarded by mu_: executor tasks scheduled or running
  bool changed_ = false;                 // guarded by mu_: news arrived while busy
  std::optional<grpc::Status> end_;      // guarded by mu_: the call is ending with this
  bool finished_ = false;                // guarded by mu_: Finish was called
  // Set by Start; reset first in OnDone, which waits for a store callback in progress.
  std::unique_ptr<store::ExpertStore::Subscription> subscription_;
};

}  // namespace t2::registry
