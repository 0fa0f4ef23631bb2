// libFuzzer target: Adapt's answer verifiers (lib/adapt verifier.h) on client-chosen text.
// The first byte picks the kind (% 5: exact, numeric, choice, regex, category); the rest up
// to the first NUL is the expected answer (for regex, the RE2 pattern), after it the answer
// judged. Checks, beyond "no crash", that a verifier is made exactly when its expected answer
// can serve (a number for numeric; never a regex over kMaxRegexPatternBytes), that it accepts
// its own expected answer (exact, numeric; padded with whitespace for exact), that a choice
// verifier accepts exactly one of "(A)".."(J)", that copies judge alike, and that the free
// helpers keep their contracts (LastNumber never NaN, ChoiceLetter in A-J, NumbersEqual
// symmetric and an infinity equal only to itself, ParseVerifierKind inverting
// VerifierKindName).

#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "fuzz_input_file.h"
#include "t2/adapt/verifier.h"

namespace {

using t2::adapt::Verifier;
using t2::adapt::VerifierKind;

constexpr VerifierKind kKinds[] = {VerifierKind::kExact, VerifierKind::kNumeric,
                                   VerifierKind::kChoiceLetter, VerifierKind::kRegex,
                                   VerifierKind::kCategory};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const VerifierKind kind = kKinds[data[0] % 5];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nul = rest.find('\0');
  const std::string_view expected = rest.substr(0, nul);
  const std::string_view answer = nul == rest.npos ? "" : rest.substr(nul + 1);

  auto parsed_kind = t2::adapt::ParseVerifierKind(t2::adapt::VerifierKindName(kind));
  T2_FUZZ_CHECK(parsed_kind.ok() && *parsed_kind == kind);
  if (auto k = t2::adapt::ParseVerifierKind(expected); k.ok()) {
    T2_FUZZ_CHECK(t2::adapt::VerifierKindName(*k) == expected);
  }

  const std::optional<double> expected_number = t2::adapt::LastNumber(expected);
  const std::optional<double> answer_number = t2::adapt::LastNumber(answer);
  if (expected_number && answer_number) {
    T2_FUZZ_CHECK(!std::isnan(*expected_number) && !std::isnan(*answer_number));
    T2_FUZZ_CHECK(t2::adapt::NumbersEqual(*expected_number, *answer_number) ==
                  t2::adapt::NumbersEqual(*answer_number, *expected_number));
    // "Equal within a relative 1e-6": an infinity (a number too long for a double) equals
    // only itself.
    if (std::isinf(*expected_number) || std::isinf(*answer_number)) {
      T2_FUZZ_CHECK(t2::adapt::NumbersEqual(*expected_number, *answer_number) ==
                    (*expected_number == *answer_number));
    }
  }
  if (auto letter = t2::adapt::ChoiceLetter(answer))
    T2_FUZZ_CHECK(*letter >= 'A' && *letter <= 'J');

  auto verifier = Verifier::Create(kind, expected);
  switch (kind) {
    case VerifierKind::kExact:
      T2_FUZZ_CHECK(verifier.ok());
      T2_FUZZ_CHECK(verifier->Accepts(expected));
      T2_FUZZ_CHECK(verifier->Accepts(" \n\t" + std::string(expected) + "\r\n "));
      break;
    case VerifierKind::kNumeric:
      T2_FUZZ_CHECK(verifier.ok() == expected_number.has_value());
      if (verifier.ok()) T2_FUZZ_CHECK(verifier->Accepts(expected));
      break;
    case VerifierKind::kChoiceLetter:
      if (verifier.ok()) {
        int accepted = 0;
        for (char c = 'A'; c <= 'J'; ++c) accepted += verifier->Accepts(std::string{'(', c, ')'});
        T2_FUZZ_CHECK(accepted == 1);
      }
      break;
    case VerifierKind::kRegex:
      if (expected.size() > t2::adapt::kMaxRegexPatternBytes) T2_FUZZ_CHECK(!verifier.ok());
      break;
    case VerifierKind::kCategory:
      break;
  }
  if (!verifier.ok()) {
    T2_FUZZ_CHECK(absl::IsInvalidArgument(verifier.status()));
    return 0;
  }
  T2_FUZZ_CHECK(verifier->kind() == kind);
  const bool accepts = verifier->Accepts(answer);
  const Verifier copy = *verifier;
  T2_FUZZ_CHECK(copy.Accepts(answer) == accepts);
  return 0;
}
