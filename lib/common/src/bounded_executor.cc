#include "t2/common/bounded_executor.h"

#include <algorithm>

namespace t2 {

BoundedExecutor::BoundedExecutor(Options options) : options_(options) {}

BoundedExecutor::~BoundedExecutor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool BoundedExecutor::TrySubmit(std::function<void()> work) {
  {
    std::lock_guard lock(mu_);
    const int max_threads = std::max(1, options_.max_threads);
    if (stopping_ || outstanding_ >= max_threads + std::max(0, options_.max_queue)) return false;
    ++outstanding_;
    queue_.push_back(std::move(work));
    // A thread for each piece of work accepted and not finished, up to max_threads.
    if (outstanding_ > static_cast<int>(threads_.size()) &&
        static_cast<int>(threads_.size()) < max_threads) {
      threads_.emplace_back([this] { Loop(); });
    }
  }
  cv_.notify_one();
  return true;
}

int BoundedExecutor::threads() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(threads_.size());
}

int BoundedExecutor::queued() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(queue_.size());
}

void BoundedExecutor::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to run
    std::function<void()> work = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    work();
    work = nullptr;  // whatever it holds is released outside the lock
    lock.lock();
    --outstanding_;
  }
}

}  // namespace t2
