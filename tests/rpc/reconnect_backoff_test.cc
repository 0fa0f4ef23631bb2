// The delay between attempts to reopen a stream doubles while the peer stays down, is capped,
// starts over once a stream worked, and an outage is reported once.
#include "t2/rpc/reconnect_backoff.h"

#include <gtest/gtest.h>

namespace t2::rpc {
namespace {

using std::chrono::milliseconds;

TEST(ReconnectBackoffTest, DoublesUpToTheCapAndStartsOverAfterAStreamWorked) {
  ReconnectBackoff backoff(milliseconds(100), milliseconds(500));
  auto first = backoff.Ended(false);
  EXPECT_EQ(first.delay, milliseconds(100));
  EXPECT_TRUE(first.outage_began);
  for (auto want : {200, 400, 500, 500}) {
    auto wait = backoff.Ended(false);
    EXPECT_EQ(wait.delay, milliseconds(want));
    EXPECT_FALSE(wait.outage_began) << "the same outage is reported once";
  }
  auto after_working = backoff.Ended(true);
  EXPECT_EQ(after_working.delay, milliseconds(100));
  EXPECT_TRUE(after_working.outage_began);
  EXPECT_EQ(backoff.Ended(false).delay, milliseconds(200));
}

}  // namespace
}  // namespace t2::rpc
