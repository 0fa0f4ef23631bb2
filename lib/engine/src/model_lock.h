// The lock over the model and its SVF state, shared by the scheduler thread (one step at a
// time, back to back) and the generator's adapter operations (AddExpert, AddMixture, ...).
// With a plain mutex the scheduler, which locks again right after unlocking, wins nearly every
// race: an operation waited for many steps while decoding ran (a worker's new requests then
// queued behind one expert lookup, and a CEM population reached the batch one row at a time).
// Here the scheduler lets every operation already waiting go first, so an operation waits for
// at most the step in progress.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

namespace t2::engine {

class ModelLock {
 public:
  // For operations (BasicLockable, so std::lock_guard works).
  void lock() {
    waiting_.fetch_add(1, std::memory_order_acq_rel);
    mu_.lock();
    waiting_.fetch_sub(1, std::memory_order_acq_rel);
  }
  void unlock() { mu_.unlock(); }

  // For the scheduler thread before each step: yields to the operations waiting now. They
  // hold the lock briefly (an expert file is read before locking), so this spins only
  // while a woken waiter takes the lock.
  void LockForStep() {
    while (waiting_.load(std::memory_order_acquire) > 0) std::this_thread::yield();
    mu_.lock();
  }

 private:
  std::mutex mu_;
  std::atomic<int> waiting_{0};
};

}  // namespace t2::engine
