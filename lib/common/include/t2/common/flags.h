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
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace t2
