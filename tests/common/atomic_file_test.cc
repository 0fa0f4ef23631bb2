// WriteFileAtomically and AtomicFileWriter: the target is the old file or the whole new one,
// never part of either, and no temporary file is left behind.
#include "t2/common/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>

#include "testing/scratch_dir.h"

namespace t2 {
namespace {

std::string Read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int EntriesIn(const std::filesystem::path& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(AtomicFileTest, WritesAndReplacesWithReadableMode) {
  testing::ScratchDir dir;
  const auto path = dir.path() / "file.json";
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second, longer").ok());
  EXPECT_EQ(Read(path), "second, longer");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(EntriesIn(dir.path()), 1);
}

TEST(AtomicFileTest, AStreamedFileAppearsOnlyAtCommit) {
  testing::ScratchDir dir;
  const auto path = dir.path() / "expert.safetensors";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  auto writer = AtomicFileWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(writer->Append("new ").ok());
  ASSERT_TRUE(writer->Append("bytes").ok());
  EXPECT_EQ(writer->bytes_written(), 9);
  EXPECT_EQ(Read(path), "old");  // not yet
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_EQ(Read(path), "new bytes");
  EXPECT_EQ(EntriesIn(dir.path()), 1);
  EXPECT_EQ(writer->Append("more").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(writer->Commit().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AtomicFileTest, AnAbandonedWriterLeavesTheOldFileAndNoTemporary) {
  testing::ScratchDir dir;
  const auto path = dir.path() / "expert.safetensors";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  {
    auto writer = AtomicFileWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->Append("half of a download").ok());
    EXPECT_EQ(EntriesIn(dir.path()), 2);
    AtomicFileWriter moved = std::move(*writer);  // the moved-from one removes nothing
    EXPECT_EQ(EntriesIn(dir.path()), 2);
  }
  EXPECT_EQ(Read(path), "old");
  EXPECT_EQ(EntriesIn(dir.path()), 1);
}

TEST(AtomicFileTest, ErrorsNameThePathAndMapErrno) {
  testing::ScratchDir dir;
  auto missing = AtomicFileWriter::Create(dir.path() / "no-such-folder" / "file");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no-such-folder"), std::string::npos)
      << missing.status();
  EXPECT_EQ(ErrnoStatus("write", "/x", ENOSPC).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus("open", "/x", EROFS).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus("open", "/x", EIO).code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace t2
