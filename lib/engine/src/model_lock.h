// The lock over the model and its SVF state, shared by the scheduler thread (one step at a
// time, back to back) and the generator's adapter operations (AddExpert, AddMixture, ...).
// With a plain mutex the scheduler, which locks again right after unlocking, wins nearly every
// race: an operation waited for many steps while decoding ran (a worker's new requests then
// queued behind one expert lookup, and a CEM population reached the batch one row at a time).
// Here the scheduler lets every operation already waiting go first, so an operation waits for
// at most the step in progress. The scheduler sleeps while it lets them go (a condition
// variable, not a spin: it used to yield in a loop, a core busy for as long as they held it).
#pragma once

#include <condition_variable>
#include <mutex>

namespace t2::engine {

class ModelLock {
 public:
  // For operations (BasicLockable, so std::lock_guard works).
  void lock() {
    {
      std::lock_guard<std::mutex> l(state_mu_);
      ++waiting_;
    }
    mu_.lock();
    std::lock_guard<std::mutex> l(state_mu_);
    if (--waiting_ == 0) no_waiters_.notify_all();
  }
  void unlock() { mu_.unlock(); }

  // Operations waiting in lock() now (for tests).
  int waiters() {
    std::lock_guard<std::mutex> l(state_mu_);
    return waiting_;
  }

  // For the scheduler thread before each step: waits until the operations waiting now have
  // taken the lock, then takes it.
  void LockForStep() {
    {
      std::unique_lock<std::mutex> l(state_mu_);
      no_waiters_.wait(l, [&] { return waiting_ == 0; });
    }
    mu_.lock();
  }

 private:
  std::mutex mu_;        // the lock itself
  std::mutex state_mu_;  // guards waiting_
  std::condition_variable no_waiters_;
  int waiting_ = 0;  // operations in lock() that do not hold mu_ yet
};

}  // namespace t2::engine
