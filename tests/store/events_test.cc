// ExpertStore's change log: order, contents, waiting for new events.
#include <atomic>
#include <chrono>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store_fixture.h"
#include "t2/common/sha256.h"

namespace t2::store::testing {
namespace {

using std::chrono::milliseconds;
using ::testing::SizeIs;

TEST_F(StoreTest, EveryChangeAppendsOneEventInOrder) {
  const std::string v1 = ValidBytes(1.0f);
  ASSERT_THAT(Publish("math", 1, v1), IsOk());
  ASSERT_THAT(Publish("math", 2, ValidBytes(2.0f)), IsOk());
  ASSERT_THAT(store_->SetAlias("prod", "math", 2), IsOk());
  ASSERT_THAT(store_->SetAlias("prod", "math", 1), IsOk());
  ASSERT_THAT(store_->Deprecate("math", 2), IsOk());
  ASSERT_THAT(store_->DeleteAlias("prod"), IsOk());
  ASSERT_THAT(store_->PutMixture({.name = "mix",
                                  .experts = {{"math", 1, Sha256Hex(v1)}},
                                  .alpha = {1.0},
                                  .per_layer = false,
                                  .source = "",
                                  .updated_unix_ms = 0}),
              IsOk());
  // Refused changes and repeats add nothing.
  EXPECT_FALSE(store_->SetAlias("prod", "math", 2).ok());
  ASSERT_THAT(Publish("math", 1, v1), IsOk());

  auto events = store_->EventsSince(0);
  ASSERT_THAT(events, IsOk());
  ASSERT_THAT(*events, SizeIs(7));
  const std::vector<Event> want = {
      {1, EventKind::kExpertPublished, "math", 1, "", 0},
      {2, EventKind::kExpertPublished, "math", 2, "", 0},
      {3, EventKind::kAliasSet, "prod", 2, "math", 0},
      {4, EventKind::kAliasSet, "prod", 1, "math", 0},
      {5, EventKind::kExpertDeprecated, "math", 2, "", 0},
      {6, EventKind::kAliasDeleted, "prod", 0, "", 0},
      {7, EventKind::kMixturePut, "mix", 0, "", 0},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    Event got = (*events)[i];
    EXPECT_GT(got.unix_ms, 0);
    got.unix_ms = 0;
    EXPECT_EQ(got, want[i]) << "event " << i << ": " << EventKindName(got.kind) << " " << got.name;
  }
  EXPECT_EQ(store_->LatestSequence(), 7);
  auto tail = store_->EventsSince(5);
  ASSERT_THAT(tail, IsOk());
  ASSERT_THAT(*tail, SizeIs(2));
  EXPECT_EQ((*tail)[0].sequence, 6);
  auto limited = store_->EventsSince(0, 3);
  ASSERT_THAT(limited, IsOk());
  EXPECT_THAT(*limited, SizeIs(3));
}

TEST_F(StoreTest, WaitForEventsReturnsAtOnceWhenThereAreSome) {
  ASSERT_THAT(Publish("math", 1, ValidBytes(1.0f)), IsOk());
  auto events = store_->WaitForEvents(0, std::chrono::seconds(30), nullptr);
  ASSERT_THAT(events, IsOk());
  EXPECT_THAT(*events, SizeIs(1));
}

TEST_F(StoreTest, WaitForEventsTimesOutEmpty) {
  const auto start = std::chrono::steady_clock::now();
  auto events = store_->WaitForEvents(0, milliseconds(100), nullptr);
  ASSERT_THAT(events, IsOk());
  EXPECT_THAT(*events, SizeIs(0));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
}

TEST_F(StoreTest, WaitForEventsWakesOnAChange) {
  const std::string bytes = ValidBytes(1.0f);
  std::thread publisher([&] {
    std::this_thread::sleep_for(milliseconds(100));
    EXPECT_THAT(Publish("math", 1, bytes), IsOk());
  });
  const auto start = std::chrono::steady_clock::now();
  auto events = store_->WaitForEvents(0, std::chrono::seconds(20), nullptr);
  publisher.join();
  ASSERT_THAT(events, IsOk());
  ASSERT_THAT(*events, SizeIs(1));
  EXPECT_EQ((*events)[0].name, "math");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(StoreTest, WaitForEventsEndsOnCancellationAndClose) {
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(100));
    cancelled = true;
  });
  auto events =
      store_->WaitForEvents(0, std::chrono::seconds(20), [&] { return cancelled.load(); });
  canceller.join();
  EXPECT_THAT(events, StatusIs(absl::StatusCode::kCancelled, ""));

  std::thread closer([&] {
    std::this_thread::sleep_for(milliseconds(100));
    store_->Close();
  });
  const auto start = std::chrono::steady_clock::now();
  events = store_->WaitForEvents(0, std::chrono::seconds(20), nullptr);
  closer.join();
  EXPECT_THAT(events, StatusIs(absl::StatusCode::kCancelled, "shutting down"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // Closing only ends the waiting; the store still works.
  EXPECT_THAT(Publish("math", 1, ValidBytes(1.0f)), IsOk());
}

// The log used to keep every event forever. It keeps max_events now; a reader resuming from
// before the oldest kept one is told to resync instead of silently missing changes.
TEST_F(StoreTest, TheChangeLogKeepsMaxEventsAndAStaleReaderIsOutOfRange) {
  Reopen(/*max_events=*/3);
  for (int version = 1; version <= 5; ++version) {
    ASSERT_THAT(Publish("math", version, ValidBytes(static_cast<float>(version))), IsOk());
  }
  ASSERT_EQ(store_->LatestSequence(), 5);
  auto kept = store_->EventsSince(2);
  ASSERT_THAT(kept, IsOk());
  ASSERT_THAT(*kept, SizeIs(3));
  EXPECT_EQ(kept->front().sequence, 3);
  auto stale = store_->EventsSince(1);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kOutOfRange) << stale.status();
  EXPECT_THAT(std::string(stale.status().message()), ::testing::HasSubstr("events 2 to 2"));
  EXPECT_EQ(store_->WaitForEvents(0, milliseconds(0), nullptr).status().code(),
            absl::StatusCode::kOutOfRange);
  // A reader from another store (ahead of this log) resyncs too, without waiting.
  EXPECT_EQ(store_->WaitForEvents(9, milliseconds(60'000), nullptr).status().code(),
            absl::StatusCode::kOutOfRange);
  // Kept across a reopen.
  Reopen(/*max_events=*/3);
  EXPECT_THAT(store_->EventsSince(2), IsOk());
  EXPECT_EQ(store_->EventsSince(0).status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace t2::store::testing
