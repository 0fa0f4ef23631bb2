// Syntax checks shared by the store and the registry service (which checks a publish header
// before it accepts any blob bytes). Errors are InvalidArgument and start with `field`.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "t2/names/names.h"
#include "t2/store/types.h"

namespace t2::store {

// Expert, alias and mixture names: the shared grammar (t2/names/names.h).
using names::CheckName;
using names::IsValidName;

// 64 lowercase hex characters.
bool IsSha256Hex(std::string_view text);
absl::Status CheckSha256(std::string_view field, std::string_view text);

absl::Status CheckVersion(std::string_view field, int64_t version);  // >= 1

// name, version, size (0 < size <= max_bytes) and sha256 of a publish header; fields are
// named "publish.header.<field>".
absl::Status CheckPublishHeader(const PublishHeader& header, int64_t max_bytes = kMaxBlobBytes);

}  // namespace t2::store
