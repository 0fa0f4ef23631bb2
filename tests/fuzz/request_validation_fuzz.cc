// libFuzzer target: the dispatcher's request validation (services/dispatcher/validation.h).
// The first byte picks the message (% 3: GenerateRequest, AdaptRequest, ClassifyRequest);
// the rest is its wire encoding, parsed with ParseFromArray and validated. Checks that a
// refusal is INVALID_ARGUMENT, and that an accepted request has what the validator vouches
// for: expert/mixture names that parse (mixtures unpinned), valid classify modes, input text
// to classify when a first pass classifies; for Adapt, a plan with 1..64 examples with
// non-empty questions and answers, one verifier of the requested kind per example (exact and
// numeric ones accepting their own answer), defaults filled in within their bounds and the
// evaluation budget kept.

#include <string>

#include "absl/status/status.h"
#include "expert_resolver.h"
#include "first_pass.h"
#include "fuzz_input_file.h"
#include "google/protobuf/stubs/logging.h"
#include "validation.h"

namespace {

using namespace t2::dispatcher;
using t2::v1::Adaptation;

void NoLog(google::protobuf::LogLevel, const char*, int, const std::string&) {}

bool ValidName(const std::string& spec, bool allow_version) {
  auto name = t2::names::ParseNameVersion("name", spec);
  return name.ok() && t2::names::IsValidName(name->name) && name->version >= 0 &&
         (allow_version || name->version == 0);
}

bool Classifies(const Adaptation& a) {
  return a.strategy_case() == Adaptation::kPrompt ||
         a.strategy_case() == Adaptation::kClassifierExpert;
}

void CheckAdaptation(const Adaptation& a) {
  switch (a.strategy_case()) {
    case Adaptation::STRATEGY_NOT_SET:
    case Adaptation::kNone:
      break;
    case Adaptation::kExpert:
      T2_FUZZ_CHECK(ValidName(a.expert(), true));
      break;
    case Adaptation::kMixture:
      T2_FUZZ_CHECK(ValidName(a.mixture(), false));
      break;
    case Adaptation::kFewShotTask:
      T2_FUZZ_CHECK(ValidName(a.few_shot_task(), false));
      break;
    case Adaptation::kPrompt:
      T2_FUZZ_CHECK(t2::v1::ClassifyMode_IsValid(a.prompt().mode()));
      break;
    case Adaptation::kClassifierExpert:
      T2_FUZZ_CHECK(t2::v1::ClassifyMode_IsValid(a.classifier_expert().mode()));
      T2_FUZZ_CHECK(a.classifier_expert().expert().empty() ||
                    ValidName(a.classifier_expert().expert(), true));
      break;
  }
}

template <typename Request>
void CheckClassifiedInput(const Request& request) {
  T2_FUZZ_CHECK(request.input_case() != Request::INPUT_NOT_SET);
  T2_FUZZ_CHECK(!ClassificationSubject(RequestInput::Of(request)).empty());
}

void FuzzGenerate(const t2::v1::GenerateRequest& request) {
  absl::Status status = ValidateGenerateRequest(request);
  if (!status.ok()) {
    T2_FUZZ_CHECK(absl::IsInvalidArgument(status));
    return;
  }
  CheckAdaptation(request.adaptation());
  if (Classifies(request.adaptation())) CheckClassifiedInput(request);
}

void FuzzClassify(const t2::v1::ClassifyRequest& request) {
  absl::Status status = ValidateClassifyRequest(request);
  if (!status.ok()) {
    T2_FUZZ_CHECK(absl::IsInvalidArgument(status));
    return;
  }
  T2_FUZZ_CHECK(Classifies(request.adaptation()));
  CheckAdaptation(request.adaptation());
  CheckClassifiedInput(request);
}

void FuzzAdapt(const t2::v1::AdaptRequest& request) {
  auto plan = ValidateAdaptRequest(request);
  if (!plan.ok()) {
    T2_FUZZ_CHECK(absl::IsInvalidArgument(plan.status()));
    return;
  }
  T2_FUZZ_CHECK(plan->task == request.task() && ValidName(plan->task, false));
  T2_FUZZ_CHECK(plan->verifier != t2::adapt::VerifierKind::kCategory);
  const size_t n = plan->examples.size();
  T2_FUZZ_CHECK(n >= 1 && n <= static_cast<size_t>(kMaxExamples));
  T2_FUZZ_CHECK(n == static_cast<size_t>(request.examples_size()) && plan->verifiers.size() == n);
  for (size_t i = 0; i < n; ++i) {
    const auto& e = plan->examples[i];
    T2_FUZZ_CHECK(e.question() == request.examples(i).question() && !e.question().empty());
    T2_FUZZ_CHECK(e.answer() == request.examples(i).answer() && !e.answer().empty());
    T2_FUZZ_CHECK(plan->verifiers[i].kind() == plan->verifier);
    if (plan->verifier == t2::adapt::VerifierKind::kExact ||
        plan->verifier == t2::adapt::VerifierKind::kNumeric) {
      T2_FUZZ_CHECK(plan->verifiers[i].Accepts(e.answer()));
    }
  }
  T2_FUZZ_CHECK(plan->experts.size() == static_cast<size_t>(request.experts_size()));
  for (size_t i = 0; i < plan->experts.size(); ++i) {
    T2_FUZZ_CHECK(plan->experts[i] == request.experts(i) && ValidName(plan->experts[i], true));
  }
  T2_FUZZ_CHECK(plan->generations >= 1 && plan->generations <= kMaxGenerations);
  T2_FUZZ_CHECK(plan->population >= 1 && plan->population <= kMaxPopulation);
  T2_FUZZ_CHECK(plan->max_new_tokens >= 1 && plan->max_new_tokens <= kMaxAnswerTokens);
  T2_FUZZ_CHECK(request.generations() == 0 || plan->generations == request.generations());
  T2_FUZZ_CHECK(request.population() == 0 || plan->population == request.population());
  T2_FUZZ_CHECK(request.max_new_tokens() == 0 || plan->max_new_tokens == request.max_new_tokens());
  T2_FUZZ_CHECK(plan->per_layer == request.per_layer());
  T2_FUZZ_CHECK(int64_t{plan->generations} * plan->population * static_cast<int64_t>(n) <=
                kMaxEvaluations);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(&NoLog);  // invalid UTF-8 in a string field is logged
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const void* wire = data + 1;
  const int length = static_cast<int>(size - 1);
  switch (data[0] % 3) {
    case 0:
      if (t2::v1::GenerateRequest r; r.ParseFromArray(wire, length)) FuzzGenerate(r);
      break;
    case 1:
      if (t2::v1::AdaptRequest r; r.ParseFromArray(wire, length)) FuzzAdapt(r);
      break;
    case 2:
      if (t2::v1::ClassifyRequest r; r.ParseFromArray(wire, length)) FuzzClassify(r);
      break;
  }
  return 0;
}
