// HF tokenizers' Unicode normalizers (NFC, NFD, NFKC, NFKD, alone or in a Sequence) over
// UTF-8, done by ICU.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "unicode/uversion.h"

U_NAMESPACE_BEGIN
class Normalizer2;
U_NAMESPACE_END

namespace t2::tokenizer::internal {

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// The form an HF normalizer type names ("NFC", ...), or nullopt for any other type.
std::optional<NormalForm> NormalFormOf(std::string_view hf_type);

// A sequence of normal forms applied in order; empty: the identity. Immutable once created,
// so one instance may be used from any number of threads.
class UnicodeNormalizer {
 public:
  UnicodeNormalizer() = default;

  // InternalError if ICU cannot provide a form (its data missing).
  static absl::StatusOr<UnicodeNormalizer> Create(std::vector<NormalForm> forms);

  bool empty() const { return steps_.empty(); }

  // `text` (valid UTF-8) normalized by each form in turn. ICU takes at most 2^31 - 1 bytes;
  // the forms left when the text is longer are not applied.
  std::string Normalize(std::string_view text) const;

 private:
  std::vector<const icu::Normalizer2*> steps_;  // ICU's own singletons, never freed
};

}  // namespace t2::tokenizer::internal
