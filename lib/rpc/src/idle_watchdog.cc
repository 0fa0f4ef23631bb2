#include "t2/rpc/idle_watchdog.h"

#include <algorithm>

namespace t2::rpc {

IdleWatchdog::IdleWatchdog(absl::Duration idle) : idle_(idle), thread_([this] { Loop(); }) {}

IdleWatchdog::~IdleWatchdog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::unique_ptr<IdleWatchdog::Call> IdleWatchdog::Watch(grpc::ServerContextBase* context) {
  std::lock_guard lock(mu_);
  const uint64_t id = next_id_++;
  calls_[id] = Entry{.context = context, .last_progress = absl::Now()};
  return std::unique_ptr<Call>(new Call(this, id));
}

IdleWatchdog::Call::~Call() {
  // Under the lock: once this returns the watchdog never touches the call's context again.
  std::lock_guard lock(owner_->mu_);
  owner_->calls_.erase(id_);
}

void IdleWatchdog::Call::Touch() {
  std::lock_guard lock(owner_->mu_);
  owner_->calls_[id_].last_progress = absl::Now();
}

bool IdleWatchdog::Call::expired() const {
  std::lock_guard lock(owner_->mu_);
  auto it = owner_->calls_.find(id_);
  return it != owner_->calls_.end() && it->second.expired;
}

void IdleWatchdog::Loop() {
  // Checked a few times per `idle`, so that a call ends within about 1.25 × idle of its last
  // progress.
  const absl::Duration period = std::clamp(idle_ / 4, absl::Milliseconds(10), absl::Seconds(1));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, absl::ToChronoNanoseconds(period), [&] { return stopping_; });
    const absl::Time now = absl::Now();
    for (auto& [id, entry] : calls_) {
      if (!entry.expired && now - entry.last_progress > idle_) {
        entry.expired = true;
        entry.context->TryCancel();
      }
    }
  }
}

}  // namespace t2::rpc
