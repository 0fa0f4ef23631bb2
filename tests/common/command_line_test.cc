#include "t2/common/command_line.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace t2 {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

// A command line like the services': a ranged int32, a number, a choice, a repeatable flag.
struct Example {
  int32_t batch = 8;
  double seconds = 30;
  std::string mode = "auto";
  std::vector<std::string> stops;
  bool chat = false;
  CommandLine command_line{"example", "An example."};

  Example() {
    command_line.add_option("--batch", batch, "sequences")->transform(IntIn(1, 4096));
    command_line.add_option("--seconds", seconds, "grace")->transform(NumberIn(0, 86400));
    command_line.add_option("--mode", mode, "how")->transform(OneOf({"auto", "merged"}));
    command_line.add_option("--stop", stops, "stop string; repeatable");
    command_line.add_flag("--chat", chat, "chat template");
  }

  // The exit code (nullopt: parsed) and what was printed to stderr.
  std::pair<std::optional<int>, std::string> Parse(const std::vector<std::string>& args) {
    ::testing::internal::CaptureStderr();
    std::optional<int> exit_code = command_line.Parse(args);
    return {exit_code, ::testing::internal::GetCapturedStderr()};
  }
};

TEST(CommandLineTest, ValuesAndDefaults) {
  Example e;
  EXPECT_EQ(
      e.Parse({"--batch", "16", "--seconds=2.5", "--chat", "--stop", "a", "--stop", "b"}).first,
      std::nullopt);
  EXPECT_EQ(e.batch, 16);
  EXPECT_EQ(e.seconds, 2.5);
  EXPECT_TRUE(e.chat);
  EXPECT_EQ(e.stops, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(e.mode, "auto") << "not given: the default";
}

TEST(CommandLineTest, IntegersAreDecimalAndInRangeBeforeNarrowing) {
  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"4294967297", "--batch: must be an integer in [1, 4096], got '4294967297'"},
           {"0", "got '0'"},
           {"ten", "got 'ten'"},
           {"0x10", "got '0x10'"},
           {"", "got ''"}}) {
    Example e;
    auto [exit_code, err] = e.Parse({"--batch", text});
    EXPECT_THAT(exit_code, Optional(2)) << text;
    EXPECT_THAT(err, HasSubstr(message)) << text;
    EXPECT_THAT(err, HasSubstr("example: ")) << "errors start with the program's name";
    EXPECT_EQ(e.batch, 8) << text;
  }
  Example e;
  EXPECT_EQ(e.Parse({"--batch", "010"}).first, std::nullopt);
  EXPECT_EQ(e.batch, 10) << "CLI11 alone reads a leading 0 as octal";
}

TEST(CommandLineTest, NumbersMustBeFiniteAndInRange) {
  for (const char* text : {"nan", "NaN", "inf", "-inf", "1e999", "-1", "warm"}) {
    Example e;
    auto [exit_code, err] = e.Parse({"--seconds", text});
    EXPECT_THAT(exit_code, Optional(2)) << text;
    EXPECT_THAT(err,
                HasSubstr(std::string("--seconds: must be a number in [0, 86400], got '") + text))
        << text;
  }
}

TEST(CommandLineTest, ChoicesNameTheAlternatives) {
  Example e;
  auto [exit_code, err] = e.Parse({"--mode", "fast"});
  EXPECT_THAT(exit_code, Optional(2));
  EXPECT_THAT(err, HasSubstr("--mode: must be one of auto|merged, got 'fast'"));
}

enum class Shade { kLight, kDark };
constexpr Shade kShades[] = {Shade::kLight, Shade::kDark};
std::string_view ShadeName(Shade shade) { return shade == Shade::kLight ? "light" : "dark"; }

TEST(CommandLineTest, AnEnumFlagTakesItsValuesByName) {
  const auto parse = [](const std::vector<std::string>& args, Shade& shade) {
    CommandLine command_line("example", "");
    AddEnumOption(command_line, "--shade", shade, kShades, ShadeName, "how dark");
    ::testing::internal::CaptureStderr();
    std::optional<int> exit_code = command_line.Parse(args);
    return std::pair{exit_code, ::testing::internal::GetCapturedStderr()};
  };
  Shade shade = Shade::kLight;
  EXPECT_EQ(parse({"--shade", "dark"}, shade).first, std::nullopt);
  EXPECT_EQ(shade, Shade::kDark);
  shade = Shade::kDark;
  EXPECT_EQ(parse({}, shade).first, std::nullopt);
  EXPECT_EQ(shade, Shade::kDark) << "not given: the default";
  auto [exit_code, err] = parse({"--shade", "grey"}, shade);
  EXPECT_THAT(exit_code, Optional(2));
  EXPECT_THAT(err, HasSubstr("--shade: must be one of light|dark, got 'grey'"));
  EXPECT_EQ(shade, Shade::kDark);

  CommandLine command_line("example", "");
  AddEnumOption(command_line, "--shade", shade, kShades, ShadeName, "how dark");
  EXPECT_THAT(command_line.help(), HasSubstr("{light|dark}=dark"));
}

TEST(CommandLineTest, UnknownFlagsStrayArgumentsAndRepeatsAreErrors) {
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--bogus"}, "--bogus"},
           {{"stray"}, "stray"},
           // A repeatable flag takes one value per occurrence, so "b" is stray, not a second stop.
           {{"--stop", "a", "b"}, "not expected: b"},
           {{"--batch", "2", "--batch", "3"}, "--batch"},
           {{"--batch"}, "--batch"},
           {{"--chat=maybe"}, "--chat"}}) {
    Example e;
    auto [exit_code, err] = e.Parse(args);
    EXPECT_THAT(exit_code, Optional(2)) << args[0];
    EXPECT_THAT(err, HasSubstr(message)) << args[0];
  }
}

TEST(CommandLineTest, HelpPrintsEveryFlagWithItsDefaultAndExitsZero) {
  Example e;
  ::testing::internal::CaptureStdout();
  std::optional<int> exit_code = e.command_line.Parse({"--help"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(exit_code, Optional(0));
  for (const char* expected : {"An example.", "--batch", "=8", "[1, 4096]", "--seconds", "--mode",
                               "{auto|merged}", "--stop", "--chat"}) {
    EXPECT_THAT(out, HasSubstr(expected));
  }
}

}  // namespace
}  // namespace t2
