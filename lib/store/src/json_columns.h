// The JSON text stored in SQLite columns: a base model's target ranks and a mixture's spec.
// Stored as JSON rather than child rows because they are only ever read and written whole.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "t2/store/types.h"

namespace t2::store::internal {

std::string RanksToJson(const std::map<std::string, int64_t>& ranks);
absl::StatusOr<std::map<std::string, int64_t>> RanksFromJson(const std::string& text);

// {"experts":[{"name","version","sha256"}...],"alpha":[...],"per_layer":bool}
std::string MixtureSpecToJson(const Mixture& mixture);
// Fills experts, alpha and per_layer of `out`.
absl::Status MixtureSpecFromJson(const std::string& text, Mixture* out);

}  // namespace t2::store::internal
