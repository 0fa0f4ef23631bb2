// The one naming grammar: names, "name@version", and errors that name the field and quote
// (a cut, printable copy of) the text.
#include "t2/names/names.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace t2::names {
namespace {

using ::testing::HasSubstr;

TEST(NamesTest, TheGrammar) {
  const std::string longest(64, 'a'), too_long(65, 'a');
  for (const std::string ok : {"math", "a", "0", "code-v2", "x.y_z", longest.c_str()}) {
    EXPECT_TRUE(IsValidName(ok)) << ok;
  }
  for (const std::string bad :
       {"", "Math", "-x", ".x", "_x", "a b", "a/b", "a@1", too_long.c_str()}) {
    EXPECT_FALSE(IsValidName(bad)) << bad;
  }
  EXPECT_TRUE(CheckName("set_alias.alias", "math").ok());
  EXPECT_EQ(CheckName("set_alias.alias", "").message(), "set_alias.alias: empty");
  EXPECT_THAT(CheckName("set_alias.alias", "Math").message(),
              HasSubstr("set_alias.alias: 'Math' is not a valid name"));
}

TEST(NamesTest, NameAtVersion) {
  auto plain = ParseNameVersion("adapter", "math");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->name, "math");
  EXPECT_EQ(plain->version, 0);
  auto pinned = ParseNameVersion("adapter", "math@12");
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(pinned->name, "math");
  EXPECT_EQ(pinned->version, 12);
  for (const char* bad :
       {"math@", "math@0", "math@-1", "math@1x", "math@99999999999999999999", "math@1@2"}) {
    auto parsed = ParseNameVersion("adapter", bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("the version after @ must be an integer >= 1"))
        << bad;
  }
  auto bad_name = ParseNameVersion("experts get", "Math@2");
  ASSERT_FALSE(bad_name.ok());
  EXPECT_THAT(bad_name.status().message(), HasSubstr("experts get: 'Math@2' is not a valid name"));
  EXPECT_FALSE(ParseNameVersion("adapter", "@3").ok());
}

TEST(NamesTest, QuotedTextIsCutAndPrintable) {
  EXPECT_EQ(Quoted("a\nb"), "'a?b'");
  const std::string quoted = Quoted(std::string(200, 'x'));
  EXPECT_EQ(quoted, "'" + std::string(80, 'x') + "...'");
}

}  // namespace
}  // namespace t2::names
