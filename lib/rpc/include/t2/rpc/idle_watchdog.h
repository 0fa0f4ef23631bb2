// Ends server calls whose peer has gone quiet. A client that stops sending in an upload, or
// stops reading a download, would otherwise hold the call's resources (a synchronous
// handler's thread; an upload's staging file and disk reservation) until its deadline, which
// a client may leave unset. A call watched here that makes no progress for `idle` is
// cancelled: its pending read or write then fails (a callback reactor also gets OnCancel).
#pragma once

#include <grpcpp/server_context.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/time/time.h"

namespace t2::rpc {

class IdleWatchdog {
 public:
  // One watched call, from Watch() until destroyed (before the handler returns).
  class Call {
   public:
    ~Call();
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;
    void Touch();          // progress: a message read or written
    bool expired() const;  // the watchdog cancelled the call

   private:
    friend class IdleWatchdog;
    Call(IdleWatchdog* owner, uint64_t id) : owner_(owner), id_(id) {}
    IdleWatchdog* owner_;
    uint64_t id_;
  };

  explicit IdleWatchdog(absl::Duration idle);
  ~IdleWatchdog();  // every Call must be gone
  IdleWatchdog(const IdleWatchdog&) = delete;
  IdleWatchdog& operator=(const IdleWatchdog&) = delete;

  // Works for both APIs: a synchronous handler's context or a callback reactor's.
  std::unique_ptr<Call> Watch(grpc::ServerContextBase* context);
  absl::Duration idle() const { return idle_; }

 private:
  struct Entry {
    grpc::ServerContextBase* context;
    absl::Time last_progress;
    bool expired = false;
  };
  void Loop();

  const absl::Duration idle_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Entry> calls_;  // guarded by mu_
  uint64_t next_id_ = 0;             // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  std::thread thread_;
};

}  // namespace t2::rpc
