// Strict JSON parsing for safetensors headers and checkpoint indexes (private to t2_formats).
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace t2::formats::internal {

// Parses `text` as one JSON document. Unlike nlohmann::json::parse, rejects objects with a
// duplicate key (nlohmann would silently keep the last one, so two tensors of one name
// would pass unnoticed) and nesting deeper than `max_depth` (bounds the DOM that
// malicious input can build). Never throws; errors are InvalidArgumentError naming `what`
// and the byte position.
absl::StatusOr<nlohmann::json> ParseStrictJson(std::string_view text, std::string_view what,
                                               int max_depth = 32);

}  // namespace t2::formats::internal
