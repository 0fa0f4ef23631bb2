// kill -9 at every step of Publish (T2_STORE_CRASH_AT in a forked child): after reopening,
// the old version is intact and the new one is either absent or complete, nothing half-made
// is left on disk, and publishing the new version again succeeds.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store_fixture.h"
#include "t2/common/sha256.h"

namespace t2::store::testing {
namespace {

int CountFiles(const std::filesystem::path& dir) {
  int n = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    n += entry.is_regular_file() ? 1 : 0;
  }
  return n;
}

class CrashTest : public StoreTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(CrashTest, PublishSurvivesKillNine) {
  const std::string step = GetParam();
  const std::string v1 = ValidBytes(1.0f);
  const std::string v2 = ValidBytes(2.0f);
  ASSERT_THAT(Publish("math", 1, v1), IsOk());
  store_.reset();  // the child takes the root's lock

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: no gtest assertions, only an exit code the parent can read.
    ::setenv("T2_STORE_CRASH_AT", step.c_str(), 1);
    auto store = ExpertStore::Open({.root = root()});
    if (!store.ok()) ::_exit(10);
    auto staged = (*store)->StageBlob();
    if (!staged.ok() || !staged->Append(v2).ok()) ::_exit(11);
    auto published = (*store)->Publish(HeaderFor("math", 2, v2), *std::move(staged));
    ::_exit(published.ok() ? 12 : 13);  // the crash point did not fire
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);

  // The state the crash left, before recovery: proves each step is where it claims to be.
  const bool renamed = step != "blob_written";
  EXPECT_EQ(CountFiles(root() / "tmp"), renamed ? 0 : 1);
  EXPECT_EQ(std::filesystem::exists(BlobFile(Sha256Hex(v2))), renamed);

  Open();
  const bool committed = step == "committed";
  auto old_version = store_->GetExpert("math", 1);
  ASSERT_THAT(old_version, IsOk());
  EXPECT_EQ(ReadFileBytes(old_version->path), v1);
  auto new_version = store_->GetExpert("math", 2);
  if (committed) {
    ASSERT_THAT(new_version, IsOk());
    EXPECT_EQ(ReadFileBytes(new_version->path), v2);
    EXPECT_EQ(store_->LatestSequence(), 2);
  } else {
    EXPECT_THAT(new_version, StatusIs(absl::StatusCode::kNotFound, "get.version"));
    EXPECT_EQ(store_->LatestSequence(), 1);
    EXPECT_EQ(store_->ResolveExpert("math", 0)->version, 1);
  }
  EXPECT_EQ(CountFiles(root() / "tmp"), 0) << "unfinished uploads are removed on open";
  EXPECT_EQ(CountFiles(root() / "blobs"), committed ? 2 : 1) << "orphan blobs are removed";

  // The publisher retries; it works, whether or not the first attempt landed.
  ASSERT_THAT(Publish("math", 2, v2), IsOk());
  new_version = store_->GetExpert("math", 2);
  ASSERT_THAT(new_version, IsOk());
  EXPECT_EQ(ReadFileBytes(new_version->path), v2);
  EXPECT_EQ(store_->LatestSequence(), 2);
  auto events = store_->EventsSince(0);
  ASSERT_THAT(events, IsOk());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].version, 2);
}

INSTANTIATE_TEST_SUITE_P(EveryStep, CrashTest,
                         ::testing::Values("blob_written", "blob_renamed", "row_inserted",
                                           "committed"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace t2::store::testing
