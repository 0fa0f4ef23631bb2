#include "first_pass.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "t2/adapt/classify.h"
#include "t2/common/status.h"
#include "worker_calls.h"

namespace t2::dispatcher {
namespace {

using t2::v1::Adaptation;

t2::v1::Chat UserChat(const std::string& text) {
  t2::v1::Chat chat;
  t2::v1::ChatMessage* m = chat.add_messages();
  m->set_role("user");
  m->set_content(text);
  return chat;
}

void SetAdapter(t2::v1::FirstPass& fp, const ResolvedAdapter& adapter) {
  fp.set_adapter(adapter.label);
  *fp.mutable_spec() = adapter.spec;
}

}  // namespace

std::string ClassificationSubject(const RequestInput& input) {
  if (input.chat == nullptr) return std::string(input.prompt);
  const auto& messages = input.chat->messages();
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (it->role() == "user") return it->content();
  }
  std::vector<std::string> parts;
  for (const auto& m : messages) parts.push_back(m.content());
  return absl::StrJoin(parts, "\n");
}

FirstPassRunner::FirstPassRunner(WorkerPool& pool, ExpertResolver& resolver, Options options)
    : pool_(pool), resolver_(resolver), options_(options) {}

absl::Status FirstPassRunner::Classify(t2::v1::ClassifyMode mode, const ResolvedAdapter& classifier,
                                       const std::string& subject, const CallScope& scope,
                                       FirstPassResult& result) const {
  const t2::v1::Chat chat = UserChat(adapt::ClassificationPrompt(subject));
  if (mode == t2::v1::CLASSIFY_MODE_GENERATE) {
    t2::v1::WorkerGenerateRequest request;
    *request.mutable_chat() = chat;
    request.set_max_new_tokens(options_.generate_max_tokens);
    *request.mutable_adapter() = classifier.spec;  // default sampling: greedy
    std::string text;
    T2_RETURN_IF_ERROR(Annotate(StreamGenerate(pool_, request, scope,
                                               [&text](const t2::v1::WorkerGenerateResponse& m) {
                                                 text += m.text();
                                                 return true;
                                               }),
                                "first pass (generate)"));
    result.first_pass.set_category(adapt::CategoryFromGenerated(text));
    result.raw_output = std::move(text);
    return absl::OkStatus();
  }
  t2::v1::ScoreRequest request;
  *request.mutable_chat() = chat;
  const std::vector<std::string> completions = adapt::LabelCompletions();
  for (const std::string& c : completions) request.add_completions(c);
  *request.mutable_adapter() = classifier.spec;
  // The labels differ from their first token after "\boxed{" on: one prefill decides.
  request.set_first_token_only(true);
  absl::StatusOr<t2::v1::ScoreResponse> scored_or = Score(pool_, request, scope);
  if (!scored_or.ok()) return Annotate(scored_or.status(), "first pass (label score)");
  const t2::v1::ScoreResponse& scored = *scored_or;
  if (scored.completions_size() != static_cast<int>(completions.size())) {
    return absl::InternalError(absl::StrCat("first pass: the worker scored ",
                                            scored.completions_size(), " of ", completions.size(),
                                            " labels"));
  }
  std::vector<double> logprobs;
  for (size_t i = 0; i < completions.size(); ++i) {
    double lp = scored.completions(static_cast<int>(i)).logprob();
    logprobs.push_back(lp);
    result.label_logprobs[std::string(adapt::kCategories[i])] = lp;
  }
  result.first_pass.set_category(std::string(adapt::kCategories[adapt::ArgMax(logprobs)]));
  return absl::OkStatus();
}

absl::StatusOr<FirstPassResult> FirstPassRunner::Run(const Adaptation& adaptation,
                                                     const RequestInput& input,
                                                     const CallScope& scope) const {
  const auto start = std::chrono::steady_clock::now();
  FirstPassResult result;
  t2::v1::FirstPass& fp = result.first_pass;
  switch (adaptation.strategy_case()) {
    case Adaptation::STRATEGY_NOT_SET:
    case Adaptation::kNone:
      fp.set_strategy("none");
      SetAdapter(fp, BaseAdapter());
      break;
    case Adaptation::kExpert: {
      fp.set_strategy("expert");
      T2_ASSIGN_OR_RETURN(ResolvedAdapter a, resolver_.ResolveExpert(adaptation.expert(), scope));
      SetAdapter(fp, a);
      break;
    }
    case Adaptation::kMixture: {
      fp.set_strategy("mixture");
      T2_ASSIGN_OR_RETURN(ResolvedAdapter a,
                          resolver_.ResolveMixture(adaptation.mixture(), "mixture", scope));
      SetAdapter(fp, a);
      break;
    }
    case Adaptation::kFewShotTask: {
      fp.set_strategy("few_shot");
      T2_ASSIGN_OR_RETURN(
          ResolvedAdapter a,
          resolver_.ResolveMixture(adaptation.few_shot_task(), "few-shot task mixture", scope));
      SetAdapter(fp, a);
      break;
    }
    case Adaptation::kPrompt:
    case Adaptation::kClassifierExpert: {
      const bool prompt = adaptation.strategy_case() == Adaptation::kPrompt;
      fp.set_strategy(prompt ? "prompt" : "classifier_expert");
      ResolvedAdapter classifier = BaseAdapter();
      t2::v1::ClassifyMode mode = adaptation.prompt().mode();
      if (!prompt) {
        mode = adaptation.classifier_expert().mode();
        const std::string& named = adaptation.classifier_expert().expert();
        absl::StatusOr<ResolvedAdapter> cls =
            resolver_.ResolveExpert(named.empty() ? "cls" : named, scope);
        if (!cls.ok()) return Annotate(cls.status(), "classifier expert");
        classifier = *std::move(cls);
      }
      T2_RETURN_IF_ERROR(Classify(mode, classifier, ClassificationSubject(input), scope, result));
      ResolvedAdapter chosen = BaseAdapter();
      if (fp.category() != adapt::kOtherCategory) {
        absl::StatusOr<ResolvedAdapter> alias = resolver_.ResolveAlias(fp.category(), scope);
        if (alias.ok()) {
          chosen = *std::move(alias);
        } else if (!absl::IsNotFound(alias.status())) {
          return Annotate(alias.status(), absl::StrCat("resolving category '", fp.category(), "'"));
        }
      }
      SetAdapter(fp, chosen);
      break;
    }
  }
  fp.set_duration_ms(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return result;
}

}  // namespace t2::dispatcher
