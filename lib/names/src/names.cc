#include "t2/names/names.h"

#include <charconv>

#include "absl/strings/str_cat.h"

namespace t2::names {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

absl::string_view View(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::string Quoted(std::string_view value) {
  std::string out = "'";
  for (char c : value.substr(0, 80)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (value.size() > 80) out += "...";
  out += "'";
  return out;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 64 || !IsLowerAlnum(name[0])) return false;
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

absl::Status CheckName(std::string_view field, std::string_view name) {
  if (IsValidName(name)) return absl::OkStatus();
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(View(field), ": empty"));
  return absl::InvalidArgumentError(absl::StrCat(
      View(field), ": ", Quoted(name), " is not a valid name ([a-z0-9][a-z0-9._-]{0,63})"));
}

absl::StatusOr<NameVersion> ParseNameVersion(std::string_view field, std::string_view text) {
  NameVersion out;
  std::string_view name = text;
  if (const size_t at = text.find('@'); at != std::string_view::npos) {
    name = text.substr(0, at);
    const std::string_view version = text.substr(at + 1);
    const auto [end, ec] =
        std::from_chars(version.data(), version.data() + version.size(), out.version);
    if (version.empty() || ec != std::errc() || end != version.data() + version.size() ||
        out.version < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          View(field), ": ", Quoted(text), ": the version after @ must be an integer >= 1"));
    }
  }
  if (!IsValidName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(View(field), ": ", Quoted(text),
                     " is not a valid name ([a-z0-9][a-z0-9._-]{0,63}, optionally @version)"));
  }
  out.name = std::string(name);
  return out;
}

}  // namespace t2::names
