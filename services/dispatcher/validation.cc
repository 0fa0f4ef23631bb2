#include "validation.h"

#include "absl/strings/str_cat.h"
#include "expert_resolver.h"
#include "first_pass.h"
#include "t2/common/status.h"

namespace t2::dispatcher {
namespace {

using t2::v1::Adaptation;

absl::Status Invalid(std::string_view field, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": ", AsAbsl(problem)));
}

absl::Status ValidateMode(t2::v1::ClassifyMode mode, std::string_view field) {
  if (!t2::v1::ClassifyMode_IsValid(mode)) {
    return Invalid(field, absl::StrCat("unknown ClassifyMode ", static_cast<int>(mode)));
  }
  return absl::OkStatus();
}

absl::Status ValidateName(std::string_view value, std::string_view field, bool allow_version) {
  if (value.empty()) return Invalid(field, "must not be empty");
  absl::StatusOr<names::NameVersion> name = names::ParseNameVersion(field, value);
  if (!name.ok()) return name.status();
  if (!allow_version && name->version != 0) return Invalid(field, "takes no @version");
  return absl::OkStatus();
}

bool Classifies(const Adaptation& a) {
  return a.strategy_case() == Adaptation::kPrompt ||
         a.strategy_case() == Adaptation::kClassifierExpert;
}

template <typename Request>
absl::Status ValidateClassifiedInput(const Request& request) {
  if (request.input_case() == Request::INPUT_NOT_SET) {
    return Invalid("input", "set chat or prompt: the first pass classifies it");
  }
  if (ClassificationSubject(RequestInput::Of(request)).empty()) {
    return Invalid("input", "has no text for the first pass to classify");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateAdaptation(const Adaptation& a) {
  switch (a.strategy_case()) {
    case Adaptation::STRATEGY_NOT_SET:
    case Adaptation::kNone:
      return absl::OkStatus();
    case Adaptation::kExpert:
      return ValidateName(a.expert(), "adaptation.expert", /*allow_version=*/true);
    case Adaptation::kMixture:
      return ValidateName(a.mixture(), "adaptation.mixture", false);
    case Adaptation::kFewShotTask:
      return ValidateName(a.few_shot_task(), "adaptation.few_shot_task", false);
    case Adaptation::kPrompt:
      return ValidateMode(a.prompt().mode(), "adaptation.prompt.mode");
    case Adaptation::kClassifierExpert:
      T2_RETURN_IF_ERROR(
          ValidateMode(a.classifier_expert().mode(), "adaptation.classifier_expert.mode"));
      if (a.classifier_expert().expert().empty()) return absl::OkStatus();  // the "cls" alias
      return ValidateName(a.classifier_expert().expert(), "adaptation.classifier_expert.expert",
                          true);
  }
  return Invalid("adaptation", "unknown strategy");
}

absl::Status ValidateGenerateRequest(const t2::v1::GenerateRequest& request) {
  T2_RETURN_IF_ERROR(ValidateAdaptation(request.adaptation()));
  if (Classifies(request.adaptation())) T2_RETURN_IF_ERROR(ValidateClassifiedInput(request));
  return absl::OkStatus();
}

absl::Status ValidateClassifyRequest(const t2::v1::ClassifyRequest& request) {
  if (!Classifies(request.adaptation())) {
    return Invalid("adaptation", "Classify needs the prompt or classifier_expert strategy");
  }
  T2_RETURN_IF_ERROR(ValidateAdaptation(request.adaptation()));
  return ValidateClassifiedInput(request);
}

namespace {

absl::StatusOr<adapt::VerifierKind> ToVerifierKind(t2::v1::VerifierKind kind) {
  switch (kind) {
    case t2::v1::VERIFIER_KIND_EXACT:
      return adapt::VerifierKind::kExact;
    case t2::v1::VERIFIER_KIND_NUMERIC:
      return adapt::VerifierKind::kNumeric;
    case t2::v1::VERIFIER_KIND_CHOICE_LETTER:
      return adapt::VerifierKind::kChoiceLetter;
    case t2::v1::VERIFIER_KIND_REGEX:
      return adapt::VerifierKind::kRegex;
    default:
      return Invalid("verifier", "must be EXACT, NUMERIC, CHOICE_LETTER or REGEX");
  }
}

// Each solved example with the verifier its answer makes (an answer the verifier cannot use,
// say a regex that does not compile, is the request's error).
absl::Status AddExamples(const t2::v1::AdaptRequest& request, AdaptPlan& plan) {
  if (request.examples_size() < 1 || request.examples_size() > kMaxExamples) {
    return Invalid("examples", absl::StrCat("needs 1 to ", kMaxExamples, " solved examples, got ",
                                            request.examples_size()));
  }
  for (int i = 0; i < request.examples_size(); ++i) {
    const t2::v1::SolvedExample& e = request.examples(i);
    const std::string field = absl::StrCat("examples[", i, "]");
    if (e.question().empty()) return Invalid(absl::StrCat(field, ".question"), "must not be empty");
    if (e.answer().empty()) return Invalid(absl::StrCat(field, ".answer"), "must not be empty");
    absl::StatusOr<adapt::Verifier> v = adapt::Verifier::Create(plan.verifier, e.answer());
    if (!v.ok()) return Invalid(absl::StrCat(field, ".answer"), std::string(v.status().message()));
    plan.examples.push_back(e);
    plan.verifiers.push_back(*std::move(v));
  }
  return absl::OkStatus();
}

// The CEM search's size: each of generations, population and max_new_tokens (0: the default),
// and their product over the examples, bounded.
absl::Status SetSearchSize(const t2::v1::AdaptRequest& request, AdaptPlan& plan) {
  if (request.generations() < 0 || request.generations() > kMaxGenerations) {
    return Invalid("generations", absl::StrCat("must be in [0, ", kMaxGenerations,
                                               "] (0: ", kDefaultGenerations, ")"));
  }
  if (request.population() < 0 || request.population() > kMaxPopulation) {
    return Invalid("population", absl::StrCat("must be in [0, ", kMaxPopulation,
                                              "] (0: ", kDefaultPopulation, ")"));
  }
  if (request.max_new_tokens() < 0 || request.max_new_tokens() > kMaxAnswerTokens) {
    return Invalid("max_new_tokens", absl::StrCat("must be in [0, ", kMaxAnswerTokens,
                                                  "] (0: ", kDefaultAnswerTokens, ")"));
  }
  if (request.generations() > 0) plan.generations = request.generations();
  if (request.population() > 0) plan.population = request.population();
  if (request.max_new_tokens() > 0) plan.max_new_tokens = request.max_new_tokens();
  const int64_t evaluations =
      int64_t{plan.generations} * plan.population * static_cast<int64_t>(plan.examples.size());
  if (evaluations > kMaxEvaluations) {
    return Invalid("population", absl::StrCat("generations x population x examples = ", evaluations,
                                              " answers; at most ", kMaxEvaluations));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AdaptPlan> ValidateAdaptRequest(const t2::v1::AdaptRequest& request) {
  AdaptPlan plan;
  T2_RETURN_IF_ERROR(ValidateName(request.task(), "task", false));
  plan.task = request.task();
  T2_ASSIGN_OR_RETURN(plan.verifier, ToVerifierKind(request.verifier()));
  T2_RETURN_IF_ERROR(AddExamples(request, plan));
  for (int i = 0; i < request.experts_size(); ++i) {
    T2_RETURN_IF_ERROR(ValidateName(request.experts(i), absl::StrCat("experts[", i, "]"), true));
    plan.experts.push_back(request.experts(i));
  }
  T2_RETURN_IF_ERROR(SetSearchSize(request, plan));
  plan.per_layer = request.per_layer();
  return plan;
}

}  // namespace t2::dispatcher
