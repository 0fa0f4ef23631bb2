// ExpertStore's change log: order, contents, waiting for new events.
#include <atomic>
#include <chrono>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store_fixture.h"
#include "t2/common/sha256.h"

namespace t2::store::testing {
namespace {

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

// A subscriber hears of every change as it is committed and of Close, and nothing once its
// subscription is gone; closing only tells the subscribers, the store still works.
TEST_F(StoreTest, SubscribersHearOfEachChangeAndOfClose) {
  std::atomic<int> heard{0};
  auto subscription = store_->Subscribe([&] { ++heard; });
  ASSERT_THAT(Publish("math", 1, ValidBytes(1.0f)), IsOk());
  EXPECT_EQ(heard, 1);  // told before Publish returned
  ASSERT_THAT(Publish("math", 2, ValidBytes(2.0f)), IsOk());
  EXPECT_EQ(heard, 2);
  auto events = store_->EventsSince(0);
  ASSERT_THAT(events, IsOk());
  EXPECT_THAT(*events, SizeIs(2));  // what a subscriber reads when told

  EXPECT_FALSE(store_->closed());
  store_->Close();
  EXPECT_TRUE(store_->closed());
  EXPECT_EQ(heard, 3);
  subscription.reset();
  ASSERT_THAT(Publish("math", 3, ValidBytes(3.0f)), IsOk());
  EXPECT_EQ(heard, 3) << "no call after the subscription ended";
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
  EXPECT_EQ(store_->EventsSince(0).status().code(), absl::StatusCode::kOutOfRange);
  // A reader from another store (ahead of this log) resyncs too.
  EXPECT_EQ(store_->EventsSince(9).status().code(), absl::StatusCode::kOutOfRange);
  // Kept across a reopen.
  Reopen(/*max_events=*/3);
  EXPECT_THAT(store_->EventsSince(2), IsOk());
  EXPECT_EQ(store_->EventsSince(0).status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace t2::store::testing
