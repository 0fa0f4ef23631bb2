// libFuzzer target: the registry's JSON columns (lib/store/src/json_columns.h), as read back
// from a possibly damaged database. The first byte picks the column: even, a base model's
// target ranks (RanksFromJson); odd, a mixture spec (MixtureSpecFromJson); the rest is the
// column's text. Checks that a failed read is DataLoss, and that what was read round-trips:
// written back and read again it gives the same values and the same text.

#include <string>

#include "absl/status/status.h"
#include "fuzz_input_file.h"
#include "json_columns.h"

namespace {

using namespace t2::store;
using namespace t2::store::internal;

void FuzzRanks(const std::string& text) {
  auto ranks = RanksFromJson(text);
  if (!ranks.ok()) {
    T2_FUZZ_CHECK(absl::IsDataLoss(ranks.status()));
    return;
  }
  const std::string written = RanksToJson(*ranks);
  auto again = RanksFromJson(written);
  T2_FUZZ_CHECK(again.ok() && *again == *ranks);
  T2_FUZZ_CHECK(RanksToJson(*again) == written);
}

void FuzzMixture(const std::string& text) {
  Mixture mixture;
  mixture.name = "kept";
  absl::Status status = MixtureSpecFromJson(text, &mixture);
  if (!status.ok()) {
    T2_FUZZ_CHECK(absl::IsDataLoss(status));
    return;
  }
  T2_FUZZ_CHECK(mixture.name == "kept");  // only experts, alpha and per_layer are filled
  const std::string written = MixtureSpecToJson(mixture);
  Mixture again;
  T2_FUZZ_CHECK(MixtureSpecFromJson(written, &again).ok());
  T2_FUZZ_CHECK(again.experts == mixture.experts);
  T2_FUZZ_CHECK(again.alpha == mixture.alpha);
  T2_FUZZ_CHECK(again.per_layer == mixture.per_layer);
  T2_FUZZ_CHECK(MixtureSpecToJson(again) == written);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    FuzzRanks(text);
  } else {
    FuzzMixture(text);
  }
  return 0;
}
