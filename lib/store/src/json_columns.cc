#include "json_columns.h"

#include <cstdint>
#include <exception>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "t2/common/status.h"

namespace t2::store::internal {
namespace {

using nlohmann::json;

// Rows are written only by this code; one that does not parse was damaged on disk.
absl::Status Corrupt(std::string_view what, const std::exception& e) {
  return absl::DataLossError(
      absl::StrCat("registry database: ", AsAbsl(what), " is not valid: ", e.what()));
}

// An integer written by this code. nlohmann's get<int64_t> converts a float (1e300) or an
// out-of-range number by a cast whose result is undefined: checked first.
int64_t Int64(const json& value) {
  if (!value.is_number_integer()) {
    throw std::invalid_argument(absl::StrCat("expected an integer, got ", value.dump()));
  }
  // Unsigned beyond int64's range arrives as number_unsigned.
  if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    throw std::invalid_argument(absl::StrCat("integer out of range: ", value.dump()));
  }
  return value.get<int64_t>();
}

}  // namespace

std::string RanksToJson(const std::map<std::string, int64_t>& ranks) {
  json out = json::object();
  for (const auto& [name, rank] : ranks) out[name] = rank;
  return out.dump();
}

absl::StatusOr<std::map<std::string, int64_t>> RanksFromJson(const std::string& text) {
  try {
    std::map<std::string, int64_t> out;
    const json parsed = json::parse(text);
    for (const auto& [name, rank] : parsed.items()) out[name] = Int64(rank);
    return out;
  } catch (const std::exception& e) {
    return Corrupt("base model target ranks", e);
  }
}

std::string MixtureSpecToJson(const Mixture& mixture) {
  json experts = json::array();
  for (const ExpertRef& ref : mixture.experts) {
    experts.push_back({{"name", ref.name}, {"version", ref.version}, {"sha256", ref.sha256}});
  }
  // nlohmann writes doubles with enough digits to read back the same value.
  json out = {{"experts", experts}, {"alpha", mixture.alpha}, {"per_layer", mixture.per_layer}};
  return out.dump();
}

absl::Status MixtureSpecFromJson(const std::string& text, Mixture* out) {
  try {
    json spec = json::parse(text);
    out->experts.clear();
    for (const json& e : spec.at("experts")) {
      out->experts.push_back({.name = e.at("name").get<std::string>(),
                              .version = Int64(e.at("version")),
                              .sha256 = e.at("sha256").get<std::string>()});
    }
    out->alpha = spec.at("alpha").get<std::vector<double>>();
    out->per_layer = spec.at("per_layer").get<bool>();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return Corrupt("mixture spec", e);
  }
}

}  // namespace t2::store::internal
