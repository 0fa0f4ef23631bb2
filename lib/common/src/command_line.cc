#include "t2/common/command_line.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace t2 {
namespace {

constexpr size_t kHelpColumn = 34;  // the widest flags ("--metrics-port-file FILE") fit before it
constexpr size_t kHelpWidth = 100;

// CLI11's formatter, with each flag's help wrapped at kHelpWidth (it indents after a newline).
class WrappingFormatter : public CLI::Formatter {
 public:
  WrappingFormatter() { column_width(kHelpColumn); }

  std::string make_option_desc(const CLI::Option* option) const override {
    std::string wrapped;
    size_t line = 0;
    for (absl::string_view word :
         absl::StrSplit(CLI::Formatter::make_option_desc(option), ' ', absl::SkipEmpty())) {
      if (line > 0 && line + 1 + word.size() > kHelpWidth - kHelpColumn) {
        wrapped += '\n';
        line = 0;
      } else if (line > 0) {
        wrapped += ' ';
        ++line;
      }
      absl::StrAppend(&wrapped, word);
      line += word.size();
    }
    return wrapped;
  }
};

}  // namespace

CommandLine::CommandLine(std::string name, std::string description)
    : CLI::App(std::move(description), std::move(name)) {
  option_defaults()->always_capture_default();  // every option's default shows in --help
  formatter(std::make_shared<WrappingFormatter>());
}

namespace {

// One value per occurrence everywhere: CLI11 would let a repeatable flag ("--stop a") swallow
// the arguments after it ("--stop a b") and so hide a stray one.
void OneValuePerFlag(CLI::App& app) {
  for (CLI::Option* option : app.get_options({})) {
    if (!option->get_positional()) option->allow_extra_args(false);
  }
  for (CLI::App* group : app.get_subcommands(std::function<bool(CLI::App*)>{}))
    OneValuePerFlag(*group);
}

}  // namespace

std::optional<int> CommandLine::Parse(const std::vector<std::string>& args) {
  OneValuePerFlag(*this);
  // CLI11 consumes its argument vector from the back.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::string usage = help();
    if (!usage.empty() && usage.back() != '\n') usage += '\n';  // a footer ends without one
    std::cout << usage;
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << get_name() << ": " << e.what() << "\n(" << get_name()
              << " --help shows the usage)\n";
    return 2;
  }
  return std::nullopt;
}

std::optional<int> CommandLine::Parse(int argc, char** argv) {
  return Parse(std::vector<std::string>(argv + 1, argv + argc));
}

CLI::Validator IntIn(int64_t min, int64_t max) {
  std::string range = absl::StrCat("[", min, ", ", max, "]");
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        int64_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
            value > max) {
          return absl::StrCat("must be an integer in ", range, ", got '", text, "'");
        }
        text = std::to_string(value);  // CLI11 itself would read "010" as octal
        return "";
      },
      range);
}

CLI::Validator NumberIn(double min, double max) {
  std::string range = absl::StrCat("[", min, ", ", max, "]");
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value) ||
            value < min || value > max) {
          return absl::StrCat("must be a number in ", range, ", got '", text, "'");
        }
        return "";
      },
      range);
}

CLI::Validator OneOf(std::vector<std::string> choices) {
  std::string joined = absl::StrJoin(choices, "|");
  return CLI::Validator(
      [choices = std::move(choices), joined](std::string& text) -> std::string {
        if (std::find(choices.begin(), choices.end(), text) != choices.end()) return "";
        return absl::StrCat("must be one of ", joined, ", got '", text, "'");
      },
      absl::StrCat("{", joined, "}"));
}

}  // namespace t2
