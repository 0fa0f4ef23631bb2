// The first pass: from a request's Adaptation to the adapter its second pass runs with.
//
//   none / unset        -> the base model
//   expert, mixture,    -> resolved through the registry (NOT_FOUND if missing)
//   few_shot_task
//   prompt              -> the base model classifies the request (code/math/reasoning/other);
//                          the category's alias of the same name is the adapter, and "other"
//                          or a category without an alias runs the base model (the paper's
//                          behaviour; FirstPass.category records what was chosen)
//   classifier_expert   -> the same, with the classifier adapted by the "cls" alias or the
//                          named expert (NOT_FOUND if that does not exist)
//
// Classification runs on a worker: LABEL_SCORE is one Worker.Score of the four
// "\boxed{category}" completions, GENERATE a greedy Worker.Generate parsed for \boxed{...}.
// Thread-safe (holds references only).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "call_scope.h"
#include "expert_resolver.h"
#include "t2/v1/dispatcher.pb.h"
#include "worker_pool.h"

namespace t2::dispatcher {

// A request's input, for the requests that carry one as `oneof input { Chat chat; string prompt;
// }`.
struct RequestInput {
  const t2::v1::Chat* chat = nullptr;  // set when the request has a chat
  std::string_view prompt;

  template <typename Request>
  static RequestInput Of(const Request& request) {
    RequestInput in;
    if (request.has_chat()) in.chat = &request.chat();
    in.prompt = request.prompt();
    return in;
  }
};

// What the classifier is asked about: the prompt, or the chat's last user message (the
// request being served; earlier turns are context).
std::string ClassificationSubject(const RequestInput& input);

struct FirstPassResult {
  t2::v1::FirstPass first_pass;                  // strategy, category, adapter, spec, duration_ms
  std::map<std::string, double> label_logprobs;  // LABEL_SCORE
  std::string raw_output;                        // GENERATE: the classifier's text
};

class FirstPassRunner {
 public:
  struct Options {
    int generate_max_tokens = 32;  // GENERATE mode's answer budget
  };

  FirstPassRunner(WorkerPool& pool, ExpertResolver& resolver, Options options);

  // `adaptation` must have passed ValidateAdaptation.
  absl::StatusOr<FirstPassResult> Run(const t2::v1::Adaptation& adaptation,
                                      const RequestInput& input, const CallScope& scope) const;

 private:
  // Classifies `subject` with `classifier` applied; fills label_logprobs / raw_output and
  // first_pass.category.
  absl::Status Classify(t2::v1::ClassifyMode mode, const ResolvedAdapter& classifier,
                        const std::string& subject, const CallScope& scope,
                        FirstPassResult& result) const;

  WorkerPool& pool_;
  ExpertResolver& resolver_;
  Options options_;
};

}  // namespace t2::dispatcher
