// Waiting in tests for a state they can read but not wait on (a flag another thread sets, a
// counter, a service's Info): polled until it holds or the timeout passes, so that a broken
// expectation fails the test with its message instead of hanging it until ctest's timeout.
#pragma once

#include <chrono>
#include <thread>

namespace t2::testing {

// Whether `condition()` held within `timeout`.
template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds timeout = std::chrono::seconds(60),
                std::chrono::milliseconds every = std::chrono::milliseconds(5)) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

}  // namespace t2::testing
