// t2 eval: the accuracy of the base model or an expert on a task's split, with its 95%
// interval, the way the trainer's validation and the publish gate measure it.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "commands.h"
#include "t2/common/env.h"
#include "t2/common/status.h"
#include "t2/train/evaluate.h"
#include "t2/train/gate.h"
#include "train_setup.h"

namespace t2::cli {
namespace {

constexpr const char* kUsage = R"(usage: t2 eval --task NAME|--data FILE [--expert FILE] [options]
  --expert FILE                judge this expert (default: the base model)
  --split test|validation|train  (default test)
  --limit N                    the first N examples of the split (default: all)
  --show N                     print the first N questions' answers with their verdicts
)";

absl::Status Run(const Flags& flags) {
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  }
  T2_ASSIGN_OR_RETURN(std::filesystem::path model, ResolveModelPath(flags.Get("model", "default")));
  T2_ASSIGN_OR_RETURN(tasks::Task task, trainer::TaskFromFlags(flags));
  T2_RETURN_IF_ERROR(task.Validate());
  T2_ASSIGN_OR_RETURN(engine::GeneratorOptions options, trainer::GeneratorFromFlags(flags, model));
  T2_ASSIGN_OR_RETURN(int64_t limit, flags.GetInt("limit", 0));
  T2_ASSIGN_OR_RETURN(int64_t show, flags.GetInt("show", 0));
  const std::string split = flags.Get("split", "test");
  const std::vector<tasks::Example>* examples = split == "test"         ? &task.test
                                                : split == "validation" ? &task.validation
                                                : split == "train"      ? &task.train
                                                                        : nullptr;
  if (examples == nullptr) return absl::InvalidArgumentError("--split must be test, validation or train");
  std::span<const tasks::Example> chosen(*examples);
  if (limit > 0 && static_cast<size_t>(limit) < chosen.size()) chosen = chosen.first(static_cast<size_t>(limit));

  T2_ASSIGN_OR_RETURN(std::unique_ptr<engine::Generator> generator, engine::Generator::Create(options));
  std::string adapter;
  if (flags.Has("expert")) {
    T2_RETURN_IF_ERROR(Annotate(generator->AddExpert("eval", flags.Get("expert", "")), "--expert"));
    adapter = "eval";
  }
  T2_ASSIGN_OR_RETURN(train::EvalResult r, train::Evaluate(*generator, task, chosen, adapter));
  for (size_t i = 0; i < chosen.size() && static_cast<int64_t>(i) < show; ++i) {
    std::cout << (r.correct[i] ? "[right] " : "[wrong] ") << chosen[i].id << "  expected: " << chosen[i].answer
              << "\n  answer: " << r.answers[i] << "\n  read as: " << tasks::AnswerText(task.answer_part, r.answers[i])
              << "\n";
  }
  int64_t right = 0;
  for (bool c : r.correct) right += c ? 1 : 0;
  const train::Interval ci = train::Wilson95(right, static_cast<int64_t>(chosen.size()));
  std::cout << absl::StrFormat("%s %s (%s split, n = %d): accuracy %.4f [%.4f, %.4f] 95%%; %d tokens in %.1f s\n",
                               task.name, adapter.empty() ? "base" : flags.Get("expert", ""), split, chosen.size(),
                               r.accuracy, ci.low, ci.high, r.generated_tokens, r.seconds);
  return absl::OkStatus();
}

}  // namespace

int RunEval(const std::vector<std::string>& args) {
  FlagSpec spec{.value_flags = {"expert", "split", "limit", "show"}, .bool_flags = {"help"}};
  trainer::AddTrainFlags(spec);
  auto flags = Flags::Parse(args, spec);
  if (!flags.ok()) {
    std::cerr << "t2 eval: " << flags.status().message() << "\n" << kUsage;
    return 2;
  }
  if (flags->Has("help")) {
    std::cout << kUsage << trainer::kTrainFlagsUsage;
    return 0;
  }
  absl::Status s = Run(*flags);
  if (s.ok()) return 0;
  std::cerr << "t2 eval: " << s.message() << "\n";
  return absl::IsInvalidArgument(s) ? 2 : 1;
}

}  // namespace t2::cli
