// A small command-line parser for the t2 subcommands: "--name value", "--name=value",
// boolean "--name", repeatable flags, and positional arguments. Unknown flags are errors.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace t2 {

struct FlagSpec {
  std::set<std::string> value_flags;  // take a value ("model", "prompt", "stop", ...)
  std::set<std::string> bool_flags;   // presence only ("chat")
};

class Flags {
 public:
  // argv excludes the program and subcommand names. InvalidArgumentError naming the flag.
  static absl::StatusOr<Flags> Parse(const std::vector<std::string>& args, const FlagSpec& spec);

  bool Has(const std::string& name) const { return values_.count(name) != 0; }
  std::string Get(const std::string& name, const std::string& fallback) const;
  std::vector<std::string> GetAll(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  // A finite number: "nan" and "inf" are refused like any other non-number.
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  // The same, refusing a value outside [min, max] with an error naming the flag and the range
  // (the fallback is not checked: it is the program's own).
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback, int64_t min,
                                 int64_t max) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback, double min,
                                   double max) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace t2
