// ExpertStore: publishing, reading, validation of blobs, persistence, damaged blobs.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <limits>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store_fixture.h"
#include "t2/common/sha256.h"

namespace t2::store::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::SizeIs;

std::vector<std::string> Labels(const std::vector<ExpertInfo>& infos) {
  std::vector<std::string> out;
  for (const ExpertInfo& i : infos) out.push_back(i.name + "@" + std::to_string(i.version));
  return out;
}

TEST_F(StoreTest, PublishGetList) {
  const std::string v1 = ValidBytes(1.0f);
  const std::string v2 = ValidBytes(2.0f);
  auto info = Publish("math", 1, v1);
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->name, "math");
  EXPECT_EQ(info->version, 1);
  EXPECT_EQ(info->sha256, Sha256Hex(v1));
  EXPECT_EQ(info->size_bytes, static_cast<int64_t>(v1.size()));
  EXPECT_EQ(info->base_model, "tiny-llama");
  EXPECT_EQ(info->base_fingerprint, kFingerprint);
  EXPECT_EQ(info->targets, "mlp");
  EXPECT_EQ(info->normalization, "nuclear");
  EXPECT_EQ(info->task, "math");
  EXPECT_EQ(info->metrics_json, R"({"accuracy":0.5})");
  EXPECT_GT(info->published_unix_ms, 0);
  EXPECT_FALSE(info->deprecated);
  ASSERT_THAT(Publish("math", 2, v2), IsOk());
  ASSERT_THAT(Publish("code", 1, ValidBytes(3.0f)), IsOk());

  auto newest = store_->GetExpert("math", 0);
  ASSERT_THAT(newest, IsOk());
  EXPECT_EQ(newest->info.version, 2);
  EXPECT_EQ(ReadFileBytes(newest->path), v2);
  auto first = store_->GetExpert("math", 1);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(ReadFileBytes(first->path), v1);
  EXPECT_EQ(first->path, BlobFile(Sha256Hex(v1)));

  auto all = store_->ListExperts("", false);
  ASSERT_THAT(all, IsOk());
  EXPECT_THAT(Labels(*all), ElementsAre("code@1", "math@1", "math@2"));
  auto math = store_->ListExperts("math", false);
  ASSERT_THAT(math, IsOk());
  EXPECT_THAT(Labels(*math), ElementsAre("math@1", "math@2"));

  EXPECT_THAT(store_->GetExpert("math", 3), StatusIs(absl::StatusCode::kNotFound, "get.version"));
  EXPECT_THAT(store_->GetExpert("nope", 0), StatusIs(absl::StatusCode::kNotFound, "'nope'"));
  EXPECT_THAT(store_->GetExpert("Bad Name", 0), StatusIs(kInvalid, "get.name"));
  EXPECT_THAT(store_->GetExpert("math", -1), StatusIs(kInvalid, "get.version"));
}

TEST_F(StoreTest, BlobStreamsBackInChunks) {
  const std::string bytes = ValidBytes(1.0f);
  auto info = Publish("math", 1, bytes);
  ASSERT_THAT(info, IsOk());
  auto reader = store_->OpenBlob(*info);
  ASSERT_THAT(reader, IsOk());
  std::string streamed;
  while (true) {
    auto chunk = reader->Next(7);
    ASSERT_THAT(chunk, IsOk());
    if (chunk->empty()) break;
    EXPECT_LE(chunk->size(), 7u);
    streamed += *chunk;
  }
  EXPECT_EQ(streamed, bytes);
}

TEST_F(StoreTest, StageFileCopiesAFile) {
  const std::string bytes = ValidBytes(1.0f);
  WriteFileBytes(scratch_ / "in.safetensors", bytes);
  auto staged = store_->StageFile(scratch_ / "in.safetensors");
  ASSERT_THAT(staged, IsOk());
  EXPECT_EQ(staged->size(), static_cast<int64_t>(bytes.size()));
  ASSERT_THAT(store_->Publish(HeaderFor("math", 1, bytes), *std::move(staged)), IsOk());
  EXPECT_THAT(store_->StageFile(scratch_ / "missing"),
              StatusIs(absl::StatusCode::kNotFound, "missing"));
}

TEST_F(StoreTest, RepublishingTheSameBytesIsIdempotent) {
  const std::string bytes = ValidBytes(1.0f);
  auto first = Publish("math", 1, bytes);
  ASSERT_THAT(first, IsOk());
  const int64_t sequence = store_->LatestSequence();
  auto again = Publish("math", 1, bytes);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->sha256, first->sha256);
  EXPECT_EQ(again->published_unix_ms, first->published_unix_ms);
  EXPECT_EQ(store_->LatestSequence(), sequence) << "a repeat is not a change";
  EXPECT_THAT(*store_->ListExperts("", true), SizeIs(1));
}

TEST_F(StoreTest, OtherBytesUnderAPublishedVersionAreAlreadyExists) {
  ASSERT_THAT(Publish("math", 1, ValidBytes(1.0f)), IsOk());
  EXPECT_THAT(Publish("math", 1, ValidBytes(2.0f)),
              StatusIs(absl::StatusCode::kAlreadyExists, "publish.header.version"));
  auto got = store_->GetExpert("math", 1);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(ReadFileBytes(got->path), ValidBytes(1.0f));
}

TEST_F(StoreTest, SizeAndShaMustMatchTheHeader) {
  const std::string bytes = ValidBytes(1.0f);
  PublishHeader header = HeaderFor("math", 1, bytes);
  header.size_bytes += 1;
  EXPECT_THAT(Publish(header, bytes), StatusIs(kInvalid, "publish.header.size_bytes"));
  header = HeaderFor("math", 1, bytes);
  header.sha256 = Sha256Hex(std::string("other"));
  EXPECT_THAT(Publish(header, bytes), StatusIs(kInvalid, "publish.header.sha256"));
  EXPECT_THAT(*store_->ListExperts("", true), SizeIs(0));
  EXPECT_EQ(store_->LatestSequence(), 0);
}

TEST_F(StoreTest, HeaderSyntax) {
  const std::string bytes = ValidBytes(1.0f);
  for (const std::string& name :
       std::vector<std::string>{"", "Math", "-math", ".x", "a/b", "a b", std::string(65, 'a')}) {
    EXPECT_THAT(Publish(name, 1, bytes), StatusIs(kInvalid, "publish.header.name")) << name;
  }
  for (const std::string& name :
       std::vector<std::string>{"m", "0", "math-v2.1_x", std::string(64, 'a')}) {
    EXPECT_THAT(Publish(name, 1, bytes), IsOk()) << name;
  }
  EXPECT_THAT(Publish("math", 0, bytes), StatusIs(kInvalid, "publish.header.version"));
  EXPECT_THAT(Publish("math", -3, bytes), StatusIs(kInvalid, "publish.header.version"));
  PublishHeader header = HeaderFor("math", 1, bytes);
  header.size_bytes = kMaxBlobBytes + 1;
  EXPECT_THAT(Publish(header, bytes), StatusIs(kInvalid, "publish.header.size_bytes"));
  header = HeaderFor("math", 1, bytes);
  header.sha256 = std::string(64, 'G');
  EXPECT_THAT(Publish(header, bytes), StatusIs(kInvalid, "publish.header.sha256"));
  header.sha256 = Sha256Hex(bytes).substr(1);
  EXPECT_THAT(Publish(header, bytes), StatusIs(kInvalid, "publish.header.sha256"));
}

TEST_F(StoreTest, BlobsThatAreNotValidExpertsAreRefused) {
  struct Case {
    std::string label;
    std::function<void(ExpertSpec&)> edit;
    absl::StatusCode code;
    std::string message;
  };
  const std::string gate0 = "model.layers.0.mlp.gate_proj.weight";
  const std::vector<Case> cases = {
      {"unknown base", [](ExpertSpec& s) { s.metadata["base_fingerprint"] = kOtherFingerprint; },
       absl::StatusCode::kFailedPrecondition, kOtherFingerprint},
      {"wrong rank", [&](ExpertSpec& s) { s.z[gate0].push_back(1.0f); }, kInvalid,
       "publish.blob: tensor '" + gate0 + "': length 5, expected rank 4"},
      {"missing matrix", [&](ExpertSpec& s) { s.z.erase(gate0); }, kInvalid,
       "tensor '" + gate0 + "': missing"},
      {"NaN", [&](ExpertSpec& s) { s.z[gate0][2] = std::nanf(""); }, kInvalid, "NaN at index 2"},
      {"Inf", [&](ExpertSpec& s) { s.z[gate0][0] = std::numeric_limits<float>::infinity(); },
       kInvalid, "Inf at index 0"},
      {"negative", [&](ExpertSpec& s) { s.z[gate0][1] = -0.5f; }, kInvalid, ">= 0"},
      {"all zero (nuclear)", [&](ExpertSpec& s) { s.z[gate0].assign(4, 0.0f); }, kInvalid,
       "all zero"},
      {"not F32", [&](ExpertSpec& s) { s.dtype[gate0] = formats::SafetensorsDType::kF16; },
       kInvalid, "dtype F16"},
      {"2-D",
       [&](ExpertSpec& s) {
         s.shape[gate0] = {2, 2};
       },
       kInvalid, "2-D"},
      {"attn matrix in an mlp expert",
       [](ExpertSpec& s) { s.z["model.layers.0.self_attn.q_proj.weight"] = {1.0f}; }, kInvalid,
       "not a matrix of target set 'mlp'"},
      {"layer the base does not have",
       [](ExpertSpec& s) {
         s.z["model.layers.7.mlp.up_proj.weight"] = {1.0f, 1.0f, 1.0f};
       },
       kInvalid, "not a target matrix of base model"},
      {"targets not covered", [](ExpertSpec& s) { s.metadata["targets"] = "all"; },
       absl::StatusCode::kFailedPrecondition, "metadata 'targets'"},
      {"missing key", [](ExpertSpec& s) { s.metadata.erase("task"); }, kInvalid,
       "metadata 'task': missing"},
      {"format version", [](ExpertSpec& s) { s.metadata["format_version"] = "2"; }, kInvalid,
       "metadata 'format_version'"},
      {"normalization", [](ExpertSpec& s) { s.metadata["normalization"] = "l2"; }, kInvalid,
       "metadata 'normalization'"},
      {"metrics", [](ExpertSpec& s) { s.metadata["metrics"] = "[1]"; }, kInvalid,
       "metadata 'metrics'"},
      {"no vectors", [](ExpertSpec& s) { s.z.clear(); }, kInvalid, "holds no vectors"},
  };
  int version = 0;
  for (const Case& c : cases) {
    ExpertSpec spec = TinyExpert(base_, 1.0f);
    c.edit(spec);
    EXPECT_THAT(Publish("math", ++version, Bytes(spec)), StatusIs(c.code, c.message)) << c.label;
  }
  EXPECT_THAT(Publish("math", 100, "not a safetensors file at all"),
              StatusIs(kInvalid, "publish.blob"));
  std::string truncated = ValidBytes(1.0f);
  truncated.resize(truncated.size() - 3);
  EXPECT_THAT(Publish("math", 101, truncated), StatusIs(kInvalid, "publish.blob"));

  EXPECT_THAT(*store_->ListExperts("", true), SizeIs(0));
  EXPECT_EQ(store_->LatestSequence(), 0);
  // Nothing refused is left behind, staged or stored.
  EXPECT_TRUE(std::filesystem::is_empty(root() / "tmp"));
  EXPECT_TRUE(std::filesystem::is_empty(root() / "blobs"));
}

TEST_F(StoreTest, AllTargetsBaseAcceptsAnMlpExpert) {
  BaseModel all = TinyBase(kOtherFingerprint);
  all.targets = "all";
  all.target_ranks["model.layers.0.self_attn.q_proj.weight"] = 2;
  ASSERT_THAT(store_->RegisterBaseModel(all), IsOk());
  ExpertSpec mlp = TinyExpert(base_, 1.0f);
  mlp.metadata["base_fingerprint"] = kOtherFingerprint;
  EXPECT_THAT(Publish("math", 1, Bytes(mlp)), IsOk());
  ExpertSpec full = TinyExpert(all, 1.0f);
  EXPECT_THAT(Publish("math", 2, Bytes(full)), IsOk());
}

TEST_F(StoreTest, ReopenKeepsEverything) {
  const std::string v1 = ValidBytes(1.0f);
  ASSERT_THAT(Publish("math", 1, v1), IsOk());
  ASSERT_THAT(Publish("math", 2, ValidBytes(2.0f)), IsOk());
  auto info1 = *store_->ListExperts("math", true);
  ASSERT_THAT(store_->SetAlias("math-prod", "math", 1), IsOk());
  ASSERT_THAT(store_->Deprecate("math", 2), IsOk());
  Mixture mixture{
      .name = "few-shot", .experts = {{"math", 1, Sha256Hex(v1)}}, .alpha = {1.0}, .source = "cem"};
  ASSERT_THAT(store_->PutMixture(mixture), IsOk());
  auto events = store_->EventsSince(0);
  ASSERT_THAT(events, IsOk());
  ASSERT_THAT(*events, SizeIs(5));
  const int64_t latest = store_->LatestSequence();
  EXPECT_EQ(latest, 5);

  Reopen();
  auto experts = store_->ListExperts("", true);
  ASSERT_THAT(experts, IsOk());
  EXPECT_THAT(Labels(*experts), ElementsAre("math@1", "math@2"));
  EXPECT_TRUE((*experts)[1].deprecated);
  EXPECT_EQ((*experts)[0].published_unix_ms, info1[0].published_unix_ms);
  auto via_alias = store_->GetExpert("math-prod", 0);
  ASSERT_THAT(via_alias, IsOk());
  EXPECT_EQ(ReadFileBytes(via_alias->path), v1);
  auto stored = store_->GetMixture("few-shot");
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->experts, mixture.experts);
  EXPECT_EQ(stored->alpha, mixture.alpha);
  EXPECT_THAT(store_->GetBaseModel(kFingerprint), IsOk());
  EXPECT_EQ(store_->LatestSequence(), latest);
  EXPECT_EQ(*store_->EventsSince(0), *events);
  ASSERT_THAT(store_->DeleteAlias("math-prod"), IsOk());
  EXPECT_EQ(store_->LatestSequence(), latest + 1) << "sequence numbers continue across restarts";
}

TEST_F(StoreTest, PublisherIsRecordedAndAVersion1DatabaseIsUpgraded) {
  const std::string v1 = ValidBytes(1.0f), v2 = ValidBytes(2.0f);
  PublishHeader header = HeaderFor("math", 1, v1);
  header.publisher = "trainer-nightly";
  auto published = Publish(header, v1);
  ASSERT_THAT(published, IsOk());
  EXPECT_EQ(published->published_by, "trainer-nightly");

  // A database as schema version 1 left it: no published_by column.
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((root() / "registry.db").c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "ALTER TABLE experts DROP COLUMN published_by; PRAGMA user_version=1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  Open();
  auto experts = store_->ListExperts("math", true);
  ASSERT_THAT(experts, IsOk());
  ASSERT_THAT(*experts, SizeIs(1));
  EXPECT_EQ((*experts)[0].published_by, "") << "published before anyone was recorded";
  header = HeaderFor("math", 2, v2);
  header.publisher = "alice";
  ASSERT_THAT(Publish(header, v2), IsOk());
  Reopen();
  EXPECT_EQ((*store_->ListExperts("math", true))[1].published_by, "alice");
}

TEST_F(StoreTest, OneProcessPerRoot) {
  EXPECT_THAT(ExpertStore::Open({.root = root()}),
              StatusIs(absl::StatusCode::kFailedPrecondition, "in use"));
  store_.reset();
  EXPECT_THAT(ExpertStore::Open({.root = root()}), IsOk());
}

TEST_F(StoreTest, OpenRemovesLeftoversButKeepsReferencedBlobs) {
  const std::string bytes = ValidBytes(1.0f);
  ASSERT_THAT(Publish("math", 1, bytes), IsOk());
  store_.reset();
  WriteFileBytes(root() / "tmp" / "upload-abc123", "half an upload");
  const std::string orphan = Sha256Hex(std::string("orphan"));
  std::filesystem::create_directories(BlobFile(orphan).parent_path());
  WriteFileBytes(BlobFile(orphan), "orphan");
  Open();
  EXPECT_TRUE(std::filesystem::is_empty(root() / "tmp"));
  EXPECT_FALSE(std::filesystem::exists(BlobFile(orphan)));
  EXPECT_TRUE(std::filesystem::exists(BlobFile(Sha256Hex(bytes))));
  EXPECT_THAT(store_->GetExpert("math", 1), IsOk());
}

TEST_F(StoreTest, ANewDatabaseLeavesExistingBlobsAlone) {
  const std::string bytes = ValidBytes(1.0f);
  ASSERT_THAT(Publish("math", 1, bytes), IsOk());
  store_.reset();
  for (const char* file : {"registry.db", "registry.db-wal", "registry.db-shm"}) {
    std::filesystem::remove(root() / file);
  }
  Open();
  EXPECT_TRUE(std::filesystem::exists(BlobFile(Sha256Hex(bytes))));
  EXPECT_THAT(*store_->ListExperts("", true), SizeIs(0));
}

TEST_F(StoreTest, DamagedBlobIsDataLossAndNeverServed) {
  const std::string v1 = ValidBytes(1.0f);
  const std::string v2 = ValidBytes(2.0f);
  auto info1 = Publish("math", 1, v1);
  ASSERT_THAT(info1, IsOk());
  ASSERT_THAT(Publish("math", 2, v2), IsOk());

  // One flipped bit, same size.
  std::string flipped = v1;
  flipped[flipped.size() / 2] ^= 0x10;
  WriteFileBytes(BlobFile(info1->sha256), flipped);
  EXPECT_THAT(store_->GetExpert("math", 1), StatusIs(absl::StatusCode::kDataLoss, "corrupt"));
  EXPECT_THAT(store_->OpenBlob(*info1), StatusIs(absl::StatusCode::kDataLoss, "'math' version 1"));
  // Metadata and the other version are unaffected.
  auto listed = store_->ListExperts("math", false);
  ASSERT_THAT(listed, IsOk());
  EXPECT_THAT(*listed, SizeIs(2));
  auto other = store_->GetExpert("math", 2);
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(ReadFileBytes(other->path), v2);

  WriteFileBytes(BlobFile(info1->sha256), v1.substr(0, v1.size() - 1));
  EXPECT_THAT(store_->GetExpert("math", 1), StatusIs(absl::StatusCode::kDataLoss, "bytes"));
  std::filesystem::remove(BlobFile(info1->sha256));
  EXPECT_THAT(store_->GetExpert("math", 1), StatusIs(absl::StatusCode::kDataLoss, "missing"));

  // Publishing the same bytes again puts the blob back.
  ASSERT_THAT(Publish("math", 1, v1), IsOk());
  auto repaired = store_->GetExpert("math", 1);
  ASSERT_THAT(repaired, IsOk());
  EXPECT_EQ(ReadFileBytes(repaired->path), v1);
}

// Whether thread `tid` of this process sits in openat(2), the same call (path and flags) over
// three looks 20 ms apart: blocked there, not passing through (/proc/self/task/TID/syscall).
bool BlockedInOpen(pid_t tid) {
  std::string first;
  for (int look = 0; look < 3; ++look) {
    if (look > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(absl::StrCat("/proc/self/task/", tid, "/syscall"));
    std::string line;
    std::getline(in, line);
    if (!absl::StartsWith(line, absl::StrCat(SYS_openat, " "))) return false;
    if (look == 0)
      first = line;
    else if (line != first)
      return false;
  }
  return true;
}

TEST_F(StoreTest, RepairChecksTheStoredBlobOutsideTheStoreLock) {
  // Republishing a version first hashes its stored copy (up to 256 MiB) to tell an intact one
  // from a damaged one. Here the stored copy is a FIFO: the check blocks in open() until a
  // writer comes, standing in for a long hash. Other calls must go through meanwhile.
  const std::string v1 = ValidBytes(1.0f);
  auto info = Publish("math", 1, v1);
  ASSERT_THAT(info, IsOk());
  const std::filesystem::path stored = BlobFile(info->sha256);
  std::filesystem::remove(stored);
  ASSERT_EQ(mkfifo(stored.c_str(), 0600), 0);

  std::atomic<pid_t> tid{0};
  auto republish = std::async(std::launch::async, [&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    return Publish("math", 1, v1);
  });
  // Lets the check go on: a writer that opens and closes, so it reads no bytes (damaged).
  // Bounded, and run on every path, so a failed expectation never leaves a thread behind.
  auto release_check = [&] {
    for (int i = 0;
         i < 6000 && republish.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready;
         ++i) {
      const int fd = open(stored.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) close(fd);
    }
  };
  bool blocked = false;
  for (int i = 0; i < 1000 && !blocked; ++i) {
    blocked = tid != 0 && BlockedInOpen(tid);
    if (!blocked) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!blocked) {
    release_check();
    FAIL() << "the republish never reached its check of the stored blob";
  }
  auto listed = std::async(std::launch::async, [&] { return store_->ListExperts("math", false); });
  const bool answered = listed.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  const bool still_checking = BlockedInOpen(tid);
  release_check();
  EXPECT_TRUE(answered) << "ListExperts waited for the republish's blob check: it holds the lock";
  EXPECT_TRUE(still_checking);
  ASSERT_THAT(listed.get(), IsOk());

  // The check read nothing, so the republish repaired the blob.
  ASSERT_EQ(republish.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  ASSERT_THAT(republish.get(), IsOk());
  auto repaired = store_->GetExpert("math", 1);
  ASSERT_THAT(repaired, IsOk());
  EXPECT_EQ(ReadFileBytes(repaired->path), v1);
}

TEST_F(StoreTest, BlobChangedWhileStreamingEndsInDataLoss) {
  auto info = Publish("math", 1, ValidBytes(1.0f));
  ASSERT_THAT(info, IsOk());
  auto reader = store_->OpenBlob(*info);
  ASSERT_THAT(reader, IsOk());
  ASSERT_THAT(reader->Next(16), IsOk());
  // Damaged in place (same inode) after the reader checked it.
  std::string bytes = ReadFileBytes(BlobFile(info->sha256));
  bytes.back() ^= 0x01;
  {
    std::fstream out(BlobFile(info->sha256), std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(bytes.size() - 1));
    out.put(bytes.back());
  }
  absl::StatusOr<std::string> chunk;
  do {
    chunk = reader->Next(16);
  } while (chunk.ok() && !chunk->empty());
  EXPECT_THAT(chunk, StatusIs(absl::StatusCode::kDataLoss, "changed on disk"));
}

TEST_F(StoreTest, ConcurrentPublishesOfOneVersionHaveOneWinner) {
  constexpr int kThreads = 6;
  std::vector<std::string> blobs;
  for (int i = 0; i < kThreads; ++i) blobs.push_back(ValidBytes(1.0f + static_cast<float>(i)));
  std::vector<absl::StatusOr<ExpertInfo>> results(kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = Publish("math", 1, blobs[i]); });
  }
  for (std::thread& t : threads) t.join();
  int winners = 0;
  for (const auto& r : results) {
    if (r.ok()) {
      ++winners;
    } else {
      EXPECT_THAT(r, StatusIs(absl::StatusCode::kAlreadyExists, "publish.header.version"));
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(store_->LatestSequence(), 1);
  auto got = store_->GetExpert("math", 1);
  ASSERT_THAT(got, IsOk());
  Reopen();
  // The losers' blobs were never referenced; only the winner's is left.
  int blob_files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root() / "blobs")) {
    blob_files += entry.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(blob_files, 1);
}

TEST_F(StoreTest, StagedBlobRefusesMoreThanTheLimit) {
  store_.reset();
  auto small = ExpertStore::Open({.root = root(), .max_blob_bytes = 10});
  ASSERT_THAT(small, IsOk());
  auto staged = (*small)->StageBlob();
  ASSERT_THAT(staged, IsOk());
  EXPECT_THAT(staged->Append(std::string(8, 'x')), IsOk());
  EXPECT_THAT(staged->Append(std::string(3, 'x')), StatusIs(kInvalid, "more than 10 bytes"));
  const std::filesystem::path path = staged->path();
  EXPECT_TRUE(std::filesystem::exists(path));
  staged = absl::UnknownError("dropped");
  EXPECT_FALSE(std::filesystem::exists(path)) << "an unpublished staged blob removes its file";
}

TEST_F(StoreTest, BaseModels) {
  EXPECT_THAT(store_->RegisterBaseModel(base_), IsOk()) << "idempotent";
  BaseModel other = base_;
  other.target_ranks.begin()->second += 1;
  EXPECT_THAT(store_->RegisterBaseModel(other),
              StatusIs(absl::StatusCode::kAlreadyExists, "target_ranks"));
  other = base_;
  other.name = "renamed";
  EXPECT_THAT(store_->RegisterBaseModel(other), StatusIs(absl::StatusCode::kAlreadyExists, "name"));

  BaseModel bad = TinyBase(kOtherFingerprint);
  bad.fingerprint = "XYZ";
  EXPECT_THAT(store_->RegisterBaseModel(bad), StatusIs(kInvalid, "base_model.fingerprint"));
  bad = TinyBase(kOtherFingerprint);
  bad.targets = "everything";
  EXPECT_THAT(store_->RegisterBaseModel(bad), StatusIs(kInvalid, "base_model.targets"));
  bad = TinyBase(kOtherFingerprint);
  bad.target_ranks["model.layers.0.self_attn.q_proj.weight"] = 3;
  EXPECT_THAT(store_->RegisterBaseModel(bad), StatusIs(kInvalid, "base_model.target_ranks"));
  bad = TinyBase(kOtherFingerprint);
  bad.target_ranks.begin()->second = 0;
  EXPECT_THAT(store_->RegisterBaseModel(bad), StatusIs(kInvalid, "rank 0"));
  bad = TinyBase(kOtherFingerprint);
  bad.target_ranks.clear();
  EXPECT_THAT(store_->RegisterBaseModel(bad), StatusIs(kInvalid, "base_model.target_ranks"));
  bad = TinyBase(kOtherFingerprint);
  bad.name.clear();
  EXPECT_THAT(store_->RegisterBaseModel(bad), StatusIs(kInvalid, "base_model.name"));

  auto got = store_->GetBaseModel(kFingerprint);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(*got, base_);
  EXPECT_THAT(store_->GetBaseModel(kOtherFingerprint), StatusIs(absl::StatusCode::kNotFound, ""));
}

}  // namespace
}  // namespace t2::store::testing
