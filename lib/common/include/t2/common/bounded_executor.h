// A pool of threads for work that must not run on gRPC's callback threads (those may never
// block): a handler's first pass, a registry fetch, a model call that waits its turn. Threads
// start as work arrives, up to max_threads, and stay; up to max_queue more pieces of work
// wait for one, and work beyond that is refused at once, so that a flood of calls costs the
// server a bounded number of threads and a bounded queue instead of a thread each.
//
// Thread-safe. The destructor lets queued and running work finish, then joins the threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace t2 {

class BoundedExecutor {
 public:
  struct Options {
    int max_threads = 64;
    int max_queue = 4096;  // waiting work, beyond what the threads are running
  };

  explicit BoundedExecutor(Options options);
  ~BoundedExecutor();
  BoundedExecutor(const BoundedExecutor&) = delete;
  BoundedExecutor& operator=(const BoundedExecutor&) = delete;

  // Runs `work` on one of the threads; false (and `work` dropped unrun) when max_threads +
  // max_queue pieces are already running or waiting, or the executor is being destroyed.
  // `work` must not throw.
  [[nodiscard]] bool TrySubmit(std::function<void()> work);

  // Threads started so far (they stay until destruction) and work waiting for one.
  int threads() const;
  int queued() const;
  const Options& options() const { return options_; }

 private:
  void Loop();

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  int outstanding_ = 0;                      // guarded by mu_: accepted, not yet finished
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;         // appended under mu_
};

}  // namespace t2
