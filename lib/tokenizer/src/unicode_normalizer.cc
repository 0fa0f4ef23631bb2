#include "unicode_normalizer.h"

#include <cstdint>
#include <iterator>
#include <limits>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "unicode/bytestream.h"
#include "unicode/normalizer2.h"
#include "unicode/stringpiece.h"

namespace t2::tokenizer::internal {
namespace {

constexpr NormalForm kForms[] = {NormalForm::kNfc, NormalForm::kNfd, NormalForm::kNfkc,
                                 NormalForm::kNfkd};
constexpr std::string_view kNames[] = {"NFC", "NFD", "NFKC", "NFKD"};

const icu::Normalizer2* Instance(NormalForm form, UErrorCode* status) {
  switch (form) {
    case NormalForm::kNfc:
      return icu::Normalizer2::getNFCInstance(*status);
    case NormalForm::kNfd:
      return icu::Normalizer2::getNFDInstance(*status);
    case NormalForm::kNfkc:
      return icu::Normalizer2::getNFKCInstance(*status);
    case NormalForm::kNfkd:
      return icu::Normalizer2::getNFKDInstance(*status);
  }
  return nullptr;
}

}  // namespace

std::optional<NormalForm> NormalFormOf(std::string_view hf_type) {
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (hf_type == kNames[i]) return kForms[i];
  }
  return std::nullopt;
}

absl::StatusOr<UnicodeNormalizer> UnicodeNormalizer::Create(std::vector<NormalForm> forms) {
  UnicodeNormalizer n;
  for (NormalForm form : forms) {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* instance = Instance(form, &status);
    if (U_FAILURE(status) || instance == nullptr) {
      return absl::InternalError(absl::StrCat("ICU cannot provide ",
                                              AsAbsl(kNames[static_cast<int>(form)]), ": ",
                                              u_errorName(status)));
    }
    n.steps_.push_back(instance);
  }
  return n;
}

std::string UnicodeNormalizer::Normalize(std::string_view text) const {
  std::string current(text);
  for (const icu::Normalizer2* n : steps_) {
    if (current.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) break;
    const icu::StringPiece piece(current.data(), static_cast<int32_t>(current.size()));
    UErrorCode status = U_ZERO_ERROR;
    // Most text is already normalized; that check is cheaper than a rewrite.
    if (n->isNormalizedUTF8(piece, status) && U_SUCCESS(status)) continue;
    std::string next;
    icu::StringByteSink<std::string> sink(&next, static_cast<int32_t>(current.size()));
    status = U_ZERO_ERROR;
    n->normalizeUTF8(0, piece, sink, nullptr, status);
    // Valid UTF-8 in, so ICU has no reason to fail; keep the text as it was if it does.
    if (U_SUCCESS(status)) current = std::move(next);
  }
  return current;
}

}  // namespace t2::tokenizer::internal
