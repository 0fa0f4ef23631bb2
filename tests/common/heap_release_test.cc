// ReleaseFreeHeapMemory gives freed heap memory back (RSS falls), ReadHeapUsage tells memory
// the program holds from memory malloc keeps, and HeapReleaser releases at most once per
// interval.
#include "t2/common/heap_release.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include "t2/common/sanitizer.h"

namespace t2 {
namespace {

[[maybe_unused]] int64_t ResidentBytes() {  // unused where the test skips
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

TEST(HeapReleaseTest, FreedMemoryBelowTheTopOfTheHeapGoesBackToTheSystem) {
#if defined(T2_SANITIZER_OWNS_MALLOC) || !defined(__GLIBC__)
  GTEST_SKIP() << "glibc's malloc is not the allocator here";
#else
  // 256 MiB in 64 KiB blocks (under the mmap threshold, so from the heap), written so the
  // pages are resident. Every other block is freed: each hole lies between two live blocks,
  // so free() can neither merge it into the heap's top nor return it.
  constexpr size_t kBlock = 64 << 10;
  constexpr int kBlocks = 4096;
  std::vector<void*> blocks;
  blocks.reserve(kBlocks);
  for (int i = 0; i < kBlocks; ++i) {
    blocks.push_back(std::malloc(kBlock));
    std::memset(blocks.back(), 1, kBlock);
  }
  const int64_t held = ResidentBytes();
  const std::optional<HeapUsage> usage_held = ReadHeapUsage();
  for (int i = 0; i < kBlocks; i += 2) std::free(blocks[i]);
  const int64_t after_free = ResidentBytes();
  const std::optional<HeapUsage> usage_after_free = ReadHeapUsage();
  ASSERT_TRUE(ReleaseFreeHeapMemory());
  const int64_t after_release = ResidentBytes();
  for (int i = 1; i < kBlocks; i += 2) std::free(blocks[i]);
  EXPECT_GT(after_free, held - (32 << 20)) << "free() alone returned the memory: the test proves nothing";
  EXPECT_LT(after_release, after_free - (96 << 20)) << "held " << held << ", after free " << after_free;
  // RSS stood still over the frees; the heap figures show the 128 MiB moving from in use to
  // free, which is how a soak run tells the allocator's holes from a leak.
  ASSERT_TRUE(usage_held.has_value() && usage_after_free.has_value());
  EXPECT_LT(usage_after_free->in_use_bytes, usage_held->in_use_bytes - (120u << 20));
  EXPECT_GT(usage_after_free->free_bytes, usage_held->free_bytes + (120u << 20));
#endif
}

TEST(HeapReleaseTest, ReleasesAtMostOncePerInterval) {
  HeapReleaser releaser(absl::Seconds(10));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  const bool first = releaser.MaybeRelease(t0);
#if defined(T2_SANITIZER_OWNS_MALLOC) || !defined(__GLIBC__)
  EXPECT_FALSE(first);
#else
  EXPECT_TRUE(first);
#endif
  EXPECT_FALSE(releaser.MaybeRelease(t0 + absl::Seconds(9)));
  EXPECT_EQ(releaser.MaybeRelease(t0 + absl::Seconds(10)), first);
  EXPECT_FALSE(releaser.MaybeRelease(t0 + absl::Seconds(11)));
}

}  // namespace
}  // namespace t2
