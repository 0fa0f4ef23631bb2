// ExpertStore: deprecation, aliases, mixtures.
#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store_fixture.h"
#include "t2/common/sha256.h"

namespace t2::store::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

constexpr absl::StatusCode kNotFound = absl::StatusCode::kNotFound;

class CatalogTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    for (int v = 1; v <= 3; ++v) {
      math_.push_back(ValidBytes(static_cast<float>(v)));
      ASSERT_THAT(Publish("math", v, math_.back()), IsOk());
    }
    code_ = ValidBytes(9.0f);
    ASSERT_THAT(Publish("code", 1, code_), IsOk());
  }

  int64_t ResolvedVersion(const std::string& name) {
    auto info = store_->ResolveExpert(name, 0);
    EXPECT_THAT(info, IsOk());
    return info.ok() ? info->version : -1;
  }

  ExpertRef Ref(const std::string& name, int64_t version) {
    const std::string& bytes = name == "math" ? math_[static_cast<size_t>(version - 1)] : code_;
    return ExpertRef{.name = name, .version = version, .sha256 = Sha256Hex(bytes)};
  }

  Mixture TwoExperts(std::vector<double> alpha, bool per_layer = false) {
    return Mixture{.name = "few-shot",
                   .experts = {Ref("math", 1), Ref("code", 1)},
                   .alpha = std::move(alpha),
                   .per_layer = per_layer,
                   .source = "cem: 2 x 4",
                   .updated_unix_ms = 0};
  }

  std::vector<std::string> math_;
  std::string code_;
};

TEST_F(CatalogTest, DeprecatedVersionsAreSkippedByNameButStayReadable) {
  EXPECT_EQ(ResolvedVersion("math"), 3);
  auto deprecated = store_->Deprecate("math", 3);
  ASSERT_THAT(deprecated, IsOk());
  EXPECT_TRUE(deprecated->deprecated);
  EXPECT_EQ(ResolvedVersion("math"), 2);
  auto pinned = store_->GetExpert("math", 3);
  ASSERT_THAT(pinned, IsOk());
  EXPECT_TRUE(pinned->info.deprecated);
  EXPECT_THAT(*store_->ListExperts("math", false), SizeIs(2));
  EXPECT_THAT(*store_->ListExperts("math", true), SizeIs(3));

  const int64_t sequence = store_->LatestSequence();
  EXPECT_THAT(store_->Deprecate("math", 3), IsOk());
  EXPECT_EQ(store_->LatestSequence(), sequence) << "deprecating twice is not a change";

  ASSERT_THAT(store_->Deprecate("math", 2), IsOk());
  ASSERT_THAT(store_->Deprecate("math", 1), IsOk());
  EXPECT_THAT(store_->ResolveExpert("math", 0), StatusIs(kNotFound, "deprecated"));
  EXPECT_THAT(store_->Deprecate("math", 9), StatusIs(kNotFound, "deprecate.version"));
  EXPECT_THAT(store_->Deprecate("math", 0), StatusIs(kInvalid, "deprecate.version"));
  EXPECT_THAT(store_->Deprecate("MATH", 1), StatusIs(kInvalid, "deprecate.name"));
}

TEST_F(CatalogTest, AliasesMoveAndRollBack) {
  auto set = store_->SetAlias("math-prod", "math", 2);
  ASSERT_THAT(set, IsOk());
  EXPECT_EQ(set->target, Ref("math", 2));
  EXPECT_GT(set->updated_unix_ms, 0);
  EXPECT_EQ(ResolvedVersion("math-prod"), 2);

  ASSERT_THAT(store_->SetAlias("math-prod", "math", 3), IsOk());
  EXPECT_EQ(ResolvedVersion("math-prod"), 3);
  auto got = store_->GetAlias("math-prod");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->target, Ref("math", 3));
  // Rollback is a move back.
  ASSERT_THAT(store_->SetAlias("math-prod", "math", 2), IsOk());
  EXPECT_EQ(ResolvedVersion("math-prod"), 2);
  auto blob = store_->GetExpert("math-prod", 0);
  ASSERT_THAT(blob, IsOk());
  EXPECT_EQ(ReadFileBytes(blob->path), math_[1]);

  // An alias may point at another expert entirely.
  ASSERT_THAT(store_->SetAlias("cls", "code", 1), IsOk());
  auto aliases = store_->ListAliases();
  ASSERT_THAT(aliases, IsOk());
  ASSERT_THAT(*aliases, SizeIs(2));
  EXPECT_EQ((*aliases)[0].alias, "cls");
  EXPECT_EQ((*aliases)[1].alias, "math-prod");

  // Setting the same target again is no change.
  const int64_t sequence = store_->LatestSequence();
  ASSERT_THAT(store_->SetAlias("cls", "code", 1), IsOk());
  EXPECT_EQ(store_->LatestSequence(), sequence);

  ASSERT_THAT(store_->DeleteAlias("cls"), IsOk());
  EXPECT_THAT(store_->GetAlias("cls"), StatusIs(kNotFound, "get_alias.alias"));
  EXPECT_THAT(store_->DeleteAlias("cls"), StatusIs(kNotFound, "delete_alias.alias"));
  EXPECT_THAT(store_->ResolveExpert("cls", 0), StatusIs(kNotFound, "'cls'"));
}

TEST_F(CatalogTest, AliasRules) {
  EXPECT_THAT(store_->SetAlias("math", "code", 1),
              StatusIs(absl::StatusCode::kAlreadyExists, "set_alias.alias"));
  EXPECT_THAT(store_->SetAlias("latest", "math", 7), StatusIs(kNotFound, "set_alias.version"));
  EXPECT_THAT(store_->SetAlias("latest", "nope", 1), StatusIs(kNotFound, "'nope' version 1"));
  EXPECT_THAT(store_->SetAlias("Latest", "math", 1), StatusIs(kInvalid, "set_alias.alias"));
  EXPECT_THAT(store_->SetAlias("latest", "math", 0), StatusIs(kInvalid, "set_alias.version"));

  ASSERT_THAT(store_->SetAlias("latest", "math", 3), IsOk());
  ASSERT_THAT(store_->Deprecate("math", 2), IsOk());
  EXPECT_THAT(store_->SetAlias("latest", "math", 2),
              StatusIs(absl::StatusCode::kFailedPrecondition, "deprecated"));
  EXPECT_EQ(ResolvedVersion("latest"), 3) << "a refused move leaves the alias where it was";
  // Deprecating the target of an alias leaves the alias working (in-flight work goes on).
  ASSERT_THAT(store_->Deprecate("math", 3), IsOk());
  EXPECT_EQ(ResolvedVersion("latest"), 3);

  // An alias names one version: asking for another through it is a mistake.
  EXPECT_THAT(store_->ResolveExpert("latest", 1), StatusIs(kInvalid, "get.version"));
  // And an expert may not take an alias's name.
  EXPECT_THAT(Publish("latest", 1, ValidBytes(5.0f)),
              StatusIs(absl::StatusCode::kAlreadyExists, "publish.header.name"));
}

TEST_F(CatalogTest, Mixtures) {
  auto put = store_->PutMixture(TwoExperts({0.25, 0.75}));
  ASSERT_THAT(put, IsOk());
  EXPECT_GT(put->updated_unix_ms, 0);
  auto got = store_->GetMixture("few-shot");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->experts, TwoExperts({}).experts);
  EXPECT_THAT(got->alpha, ElementsAre(0.25, 0.75));
  EXPECT_FALSE(got->per_layer);
  EXPECT_EQ(got->source, "cem: 2 x 4");

  // Per layer: any number of layers, row-major; values survive exactly.
  const std::vector<double> per_layer = {0.1, 0.9, 1.0 / 3.0, 2.0 / 3.0, 0.0, 1.0};
  ASSERT_THAT(store_->PutMixture(TwoExperts(per_layer, true)), IsOk());
  got = store_->GetMixture("few-shot");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->alpha, per_layer);
  EXPECT_TRUE(got->per_layer);

  // One expert needs no weights.
  Mixture single{.name = "solo",
                 .experts = {Ref("math", 2)},
                 .alpha = {},
                 .per_layer = false,
                 .source = "",
                 .updated_unix_ms = 0};
  ASSERT_THAT(store_->PutMixture(single), IsOk());
  auto all = store_->ListMixtures();
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(2));
  EXPECT_EQ((*all)[0].name, "few-shot");
  EXPECT_EQ((*all)[1].name, "solo");
  EXPECT_THAT(store_->GetMixture("other"), StatusIs(kNotFound, "get_mixture.name"));

  // Deleting one leaves the other and the expert versions; a second delete is NotFound.
  ASSERT_THAT(store_->DeleteMixture("few-shot"), IsOk());
  EXPECT_THAT(store_->GetMixture("few-shot"), StatusIs(kNotFound, "get_mixture.name"));
  EXPECT_THAT(store_->DeleteMixture("few-shot"), StatusIs(kNotFound, "delete_mixture.name"));
  EXPECT_THAT(store_->DeleteMixture("Bad Name"), StatusIs(kInvalid, "delete_mixture.name"));
  all = store_->ListMixtures();
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].name, "solo");
  EXPECT_THAT(store_->ResolveExpert("math", 2), IsOk());
  auto events = store_->EventsSince(0);
  ASSERT_THAT(events, IsOk());
  ASSERT_FALSE(events->empty());
  EXPECT_EQ(events->back().kind, EventKind::kMixtureDeleted);
  EXPECT_EQ(events->back().name, "few-shot");
}

TEST_F(CatalogTest, MixtureValidation) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(store_->PutMixture(TwoExperts({0.5})),
              StatusIs(kInvalid, "mixture.spec.alpha: 1 weights for 2"));
  EXPECT_THAT(store_->PutMixture(TwoExperts({})), StatusIs(kInvalid, "mixture.spec.alpha"));
  EXPECT_THAT(store_->PutMixture(TwoExperts({0.1, 0.2, 0.3}, true)),
              StatusIs(kInvalid, "not a positive multiple of 2"));
  EXPECT_THAT(store_->PutMixture(TwoExperts({}, true)), StatusIs(kInvalid, "mixture.spec.alpha"));
  EXPECT_THAT(store_->PutMixture(TwoExperts({0.5, nan})),
              StatusIs(kInvalid, "mixture.spec.alpha[1]"));
  EXPECT_THAT(store_->PutMixture(TwoExperts({0.5, std::numeric_limits<double>::infinity()})),
              StatusIs(kInvalid, "mixture.spec.alpha[1]"));
  EXPECT_THAT(store_->PutMixture(TwoExperts({-0.1, 1.0})),
              StatusIs(kInvalid, "mixture.spec.alpha[0]"));
  EXPECT_THAT(store_->PutMixture(TwoExperts({0.0, 0.0})), StatusIs(kInvalid, "sum to 0"));
  EXPECT_THAT(store_->PutMixture(TwoExperts({1.0, 0.0, 0.0, 0.0}, true)),
              StatusIs(kInvalid, "layer 1"));

  Mixture m = TwoExperts({0.5, 0.5});
  m.experts[1].sha256 = Sha256Hex(math_[0]);
  EXPECT_THAT(store_->PutMixture(m), StatusIs(kInvalid, "mixture.spec.experts[1].sha256"));
  m = TwoExperts({0.5, 0.5});
  m.experts[0].version = 8;
  EXPECT_THAT(store_->PutMixture(m), StatusIs(kNotFound, "mixture.spec.experts[0]"));
  m = TwoExperts({0.5, 0.5});
  m.experts[0].sha256 = "abc";
  EXPECT_THAT(store_->PutMixture(m), StatusIs(kInvalid, "mixture.spec.experts[0].sha256"));
  m = TwoExperts({0.5, 0.5});
  m.experts[1] = m.experts[0];
  EXPECT_THAT(store_->PutMixture(m), StatusIs(kInvalid, "listed twice"));
  m = TwoExperts({});
  m.experts.clear();
  EXPECT_THAT(store_->PutMixture(m), StatusIs(kInvalid, "mixture.spec.experts: empty"));
  m = TwoExperts({0.5, 0.5});
  m.name = "Few Shot";
  EXPECT_THAT(store_->PutMixture(m), StatusIs(kInvalid, "mixture.name"));

  EXPECT_THAT(*store_->ListMixtures(), SizeIs(0));
  // A deprecated version may still be mixed: a mixture pins versions.
  ASSERT_THAT(store_->Deprecate("math", 1), IsOk());
  EXPECT_THAT(store_->PutMixture(TwoExperts({0.5, 0.5})), IsOk());
}

}  // namespace
}  // namespace t2::store::testing
