// ModelLock: operations already waiting go before the scheduler's next step, and the scheduler
// sleeps (not spins) while they do.
#include "model_lock.h"

#include <gtest/gtest.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

namespace t2::engine {
namespace {

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Spins (bounded) until `pred` holds.
template <typename Pred>
bool Eventually(Pred pred) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(ModelLockTest, TheStepWaitsForWaitingOperationsWithoutSpinning) {
  ModelLock lock;
  std::atomic<int> order{0};
  int operation_turn = -1, step_turn = -1;

  lock.lock();  // an operation holds the lock (as an expert being added would)
  auto operation = std::async(std::launch::async, [&] {
    std::lock_guard<ModelLock> l(lock);
    operation_turn = order++;
  });
  ASSERT_TRUE(Eventually([&] { return lock.waiters() == 1; }));

  std::atomic<double> step_cpu{0};
  auto step = std::async(std::launch::async, [&] {
    const double before = ThreadCpuSeconds();
    lock.LockForStep();
    step_cpu = ThreadCpuSeconds() - before;
    step_turn = order++;
    lock.unlock();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  lock.unlock();
  ASSERT_EQ(operation.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  ASSERT_EQ(step.wait_for(std::chrono::seconds(30)), std::future_status::ready);

  EXPECT_EQ(operation_turn, 0) << "the waiting operation goes before the step";
  EXPECT_EQ(step_turn, 1);
  // A spinning step burns most of the 300 ms; a sleeping one a few microseconds.
  EXPECT_LT(step_cpu.load(), 0.05) << "the step spun while the operation waited";
}

TEST(ModelLockTest, AStepWithNobodyWaitingTakesTheLockAtOnce) {
  ModelLock lock;
  lock.LockForStep();
  lock.unlock();
  std::lock_guard<ModelLock> l(lock);  // and an operation after it
}

}  // namespace
}  // namespace t2::engine
