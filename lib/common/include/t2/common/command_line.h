// Command lines for every t2 binary and subcommand, on CLI11: each flag is declared once, with
// the variable it sets, its default (shown by --help) and its help. Unknown flags, stray
// arguments and a flag given twice are usage errors; --help prints the usage and exits 0.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace t2 {

class CommandLine : public CLI::App {
 public:
  // `name` as the user types it ("t2-worker", "t2 generate"): it starts the usage and errors.
  CommandLine(std::string name, std::string description);

  // Parses `args` (without the program's or subcommand's name). nullopt: go on. Otherwise the
  // exit code, after printing: 0 for --help (the usage, on stdout), 2 for a usage error (the
  // message naming the flag, on stderr).
  std::optional<int> Parse(const std::vector<std::string>& args);
  std::optional<int> Parse(int argc, char** argv);
};

// Validators of the text given, run before CLI11 converts it, so that a value is refused rather
// than wrapped ("4294967297" for an int32). Add them with ->transform(), not ->check(): IntIn
// also rewrites the text as plain decimal, which CLI11 would otherwise read as octal ("010").
//   --n: must be an integer in [0, 10], got '11'
CLI::Validator IntIn(int64_t min, int64_t max);
// A finite number in [min, max]: "nan" and "inf" are refused like any other non-number.
CLI::Validator NumberIn(double min, double max);
// One of `choices`: "--mode: must be one of auto|merged|factored, got 'x'".
CLI::Validator OneOf(std::vector<std::string> choices);

// A flag choosing one of `values` of an enum by name (`name_of(value)`, as "mlp" for
// svf::TargetSet::kMlp), bound to `value`, whose initial value is the default --help shows.
template <typename Enum, typename Values, typename NameOf>
CLI::Option* AddEnumOption(CLI::App& app, const std::string& flag, Enum& value,
                           const Values& values, NameOf name_of, const std::string& help) {
  std::vector<std::string> names;
  for (Enum v : values) names.emplace_back(name_of(v));
  auto set = [&value, values, name_of](const std::string& text) {
    for (Enum v : values) {
      if (name_of(v) == text) value = v;
    }
  };
  return app.add_option_function<std::string>(flag, set, help)
      ->transform(OneOf(names))
      ->default_str(std::string(name_of(value)));
}

// A flag whose text `parse` (text -> absl::StatusOr<T>) turns into `value`: a parse error is
// the usage error, after the flag's name. `format(value)` is the default --help shows.
template <typename T, typename Parse, typename Format>
CLI::Option* AddParsedOption(CLI::App& app, const std::string& flag, T& value, Parse parse,
                             Format format, const std::string& help) {
  CLI::Validator valid(
      [parse](std::string& text) -> std::string {
        auto parsed = parse(text);
        return parsed.ok() ? std::string() : std::string(parsed.status().message());
      },
      "");
  auto set = [&value, parse](const std::string& text) { value = *parse(text); };
  return app.add_option_function<std::string>(flag, set, help)
      ->transform(valid)
      ->default_str(std::string(format(value)));
}

}  // namespace t2
