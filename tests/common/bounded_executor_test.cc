#include "t2/common/bounded_executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <vector>

namespace t2 {
namespace {

using namespace std::chrono_literals;

// Work that blocks until the gate opens; every wait is bounded.
struct Gate {
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
  std::atomic<int> entered{0};
  std::atomic<int> finished{0};

  std::function<void()> Work() {
    return [this] {
      ++entered;
      opened.wait_for(30s);
      ++finished;
    };
  }
};

TEST(BoundedExecutor, RunsWorkOnAtMostMaxThreadsAndRefusesBeyondTheQueue) {
  Gate gate;
  {
    BoundedExecutor executor({.max_threads = 2, .max_queue = 3});
    int accepted = 0;
    for (int i = 0; i < 8; ++i) accepted += executor.TrySubmit(gate.Work()) ? 1 : 0;
    EXPECT_EQ(accepted, 5) << "two running, three queued";
    EXPECT_EQ(executor.threads(), 2);
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    while (gate.entered < 2 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
    EXPECT_EQ(gate.entered, 2);
    EXPECT_EQ(executor.queued(), 3);
    gate.open.set_value();
  }  // the destructor lets queued work run, then joins
  EXPECT_EQ(gate.finished, 5);
}

// No thread before there is work; one more for each piece running at once. (How many a
// sequence of short pieces leaves started depends on scheduling: a thread that has finished
// a piece may not yet be back waiting when the next arrives.)
TEST(BoundedExecutor, StartsThreadsOnlyAsWorkNeedsThem) {
  Gate gate;
  {
    BoundedExecutor executor({.max_threads = 8, .max_queue = 16});
    EXPECT_EQ(executor.threads(), 0);
    ASSERT_TRUE(executor.TrySubmit(gate.Work()));
    EXPECT_EQ(executor.threads(), 1);
    ASSERT_TRUE(executor.TrySubmit(gate.Work()));
    EXPECT_EQ(executor.threads(), 2) << "the first is still running";
    gate.open.set_value();
  }
  EXPECT_EQ(gate.finished, 2);
}

// A reactor's work may queue more work (a retry, the next step): with one thread it waits
// behind the work that queued it.
TEST(BoundedExecutor, WorkSubmittedFromWorkRuns) {
  std::promise<int> result;
  std::atomic<bool> accepted{false};
  BoundedExecutor executor({.max_threads = 1, .max_queue = 4});
  ASSERT_TRUE(
      executor.TrySubmit([&] { accepted = executor.TrySubmit([&] { result.set_value(42); }); }));
  auto future = result.get_future();
  ASSERT_EQ(future.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(accepted);
  EXPECT_EQ(future.get(), 42);
  EXPECT_EQ(executor.threads(), 1);
}

}  // namespace
}  // namespace t2
