// A store in a scratch folder with the tiny base model registered.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "store/expert_fixture.h"
#include "store/store_test_util.h"
#include "t2/store/expert_store.h"

namespace t2::store::testing {

// The code most of the store's checks return (bad names, versions, shapes).
inline constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Open();
    ASSERT_TRUE(store_ != nullptr);
    ASSERT_THAT(store_->RegisterBaseModel(base_), IsOk());
  }

  void Open(int64_t max_events = StoreOptions().max_events) {
    auto opened = ExpertStore::Open({.root = root(), .max_events = max_events});
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
  }

  void Reopen(int64_t max_events = StoreOptions().max_events) {
    store_.reset();
    Open(max_events);
  }

  std::filesystem::path root() const { return scratch_ / "root"; }

  std::string Bytes(const ExpertSpec& spec) { return ExpertBytes(spec, scratch_); }
  std::string ValidBytes(float value) { return Bytes(TinyExpert(base_, value)); }

  absl::StatusOr<ExpertInfo> Publish(const PublishHeader& header, const std::string& bytes) {
    auto staged = store_->StageBlob();
    if (!staged.ok()) return staged.status();
    absl::Status appended = staged->Append(bytes);
    if (!appended.ok()) return appended;
    return store_->Publish(header, *std::move(staged));
  }
  absl::StatusOr<ExpertInfo> Publish(const std::string& name, int64_t version,
                                     const std::string& bytes) {
    return Publish(HeaderFor(name, version, bytes), bytes);
  }

  std::filesystem::path BlobFile(const std::string& sha256) const {
    return root() / "blobs" / sha256.substr(0, 2) / sha256;
  }

  ScratchDir scratch_;
  BaseModel base_ = TinyBase();
  std::unique_ptr<ExpertStore> store_;
};

}  // namespace t2::store::testing
