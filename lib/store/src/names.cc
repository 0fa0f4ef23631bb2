#include "t2/store/names.h"

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::store {
namespace {

bool IsHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

bool IsSha256Hex(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!IsHexDigit(c)) return false;
  }
  return true;
}

absl::Status CheckSha256(std::string_view field, std::string_view text) {
  if (IsSha256Hex(text)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": ", names::Quoted(text),
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
