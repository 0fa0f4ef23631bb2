#include "t2/store/names.h"

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::store {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// Quotes a value that came from a request without letting it flood or garble a message.
std::string Quoted(std::string_view value) {
  std::string out = "'";
  for (char c : value.substr(0, 80)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (value.size() > 80) out += "...";
  out += "'";
  return out;
}

}  // namespace

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 64 || !IsLowerAlnum(name[0])) return false;
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

absl::Status CheckName(std::string_view field, std::string_view name) {
  if (IsValidName(name)) return absl::OkStatus();
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": empty"));
  return absl::InvalidArgumentError(absl::StrCat(
      AsAbsl(field), ": ", Quoted(name), " is not a valid name ([a-z0-9][a-z0-9._-]{0,63})"));
}

bool IsSha256Hex(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!IsHexDigit(c)) return false;
  }
  return true;
}

absl::Status CheckSha256(std::string_view field, std::string_view text) {
  if (IsSha256Hex(text)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": ", Quoted(text),
                                                 " is not a sha256 (64 lowercase hex characters)"));
}

absl::Status CheckVersion(std::string_view field, int64_t version) {
  if (version >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": ", version, " is not >= 1"));
}

absl::Status CheckPublishHeader(const PublishHeader& header, int64_t max_bytes) {
  T2_RETURN_IF_ERROR(CheckName("publish.header.name", header.name));
  T2_RETURN_IF_ERROR(CheckVersion("publish.header.version", header.version));
  if (header.size_bytes <= 0 || header.size_bytes > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("publish.header.size_bytes: ", header.size_bytes,
                                                   " is not in [1, ", max_bytes, "]"));
  }
  return CheckSha256("publish.header.sha256", header.sha256);
}

}  // namespace t2::store
