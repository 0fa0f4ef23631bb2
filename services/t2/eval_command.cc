// t2 eval: the accuracy of the base model or an expert on a task's split, with its 95%
// interval, the way the trainer's validation and the publish gate measure it.
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "commands.h"
#include "t2/common/command_line.h"
#include "t2/common/env.h"
#include "t2/common/status.h"
#include "t2/train/evaluate.h"
#include "t2/train/gate.h"
#include "train_setup.h"

namespace t2::cli {
namespace {

// Any integer, as before (a value <= 0 means all): no range to show in --help.
CLI::Validator AnyInteger() { return IntIn(INT64_MIN, INT64_MAX).description(""); }

// What t2 eval adds to the shared flags.
struct EvalFlags {
  std::string expert;  // empty: the base model
  std::string split = "test";
  int64_t limit = 0;
  int64_t show = 0;
};

absl::Status Run(const trainer::TrainFlags& train_flags, const EvalFlags& flags) {
  T2_ASSIGN_OR_RETURN(std::filesystem::path model, ResolveModelPath(train_flags.model));
  T2_ASSIGN_OR_RETURN(tasks::Task task, trainer::TaskFromFlags(train_flags));
  T2_RETURN_IF_ERROR(task.Validate());
  T2_ASSIGN_OR_RETURN(engine::GeneratorOptions options,
                      trainer::GeneratorFromFlags(train_flags, model));
  const int64_t limit = flags.limit, show = flags.show;
  const std::string& split = flags.split;
  const std::vector<tasks::Example>* examples = split == "test"         ? &task.test
                                                : split == "validation" ? &task.validation
                                                : split == "train"      ? &task.train
                                                                        : nullptr;
  if (examples == nullptr) return absl::InvalidArgumentError("--split must be test, validation or train");
  std::span<const tasks::Example> chosen(*examples);
  if (limit > 0 && static_cast<size_t>(limit) < chosen.size()) chosen = chosen.first(static_cast<size_t>(limit));

  T2_ASSIGN_OR_RETURN(std::unique_ptr<engine::Generator> generator, engine::Generator::Create(options));
  std::string adapter;
  if (!flags.expert.empty()) {
    T2_RETURN_IF_ERROR(Annotate(generator->AddExpert("eval", flags.expert), "--expert"));
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
  std::cout << absl::StrFormat(
      "%s %s (%s split, n = %d): accuracy %.4f [%.4f, %.4f] 95%%; %d tokens in %.1f s\n", task.name,
      adapter.empty() ? "base" : flags.expert, split, chosen.size(), r.accuracy, ci.low, ci.high,
      r.generated_tokens, r.seconds);
  return absl::OkStatus();
}

}  // namespace

int RunEval(const std::vector<std::string>& args) {
  CommandLine command_line(
      "t2 eval",
      "The accuracy of the base model or an expert on a task's split, with its 95% "
      "interval.");
  command_line.footer("Measured the way the trainer's validation and the publish gate measure it.");
  EvalFlags flags;
  CLI::App* eval = command_line.add_option_group("Evaluation");
  eval->add_option("--expert", flags.expert, "judge this expert (default: the base model)")
      ->type_name("FILE");
  eval->add_option("--split", flags.split, "the split judged")
      ->type_name("SPLIT")
      ->transform(OneOf({"test", "validation", "train"}));
  eval->add_option("--limit", flags.limit, "the first N examples of the split (0: all)")
      ->type_name("N")
      ->transform(AnyInteger());
  eval->add_option("--show", flags.show, "print the first N questions' answers with their verdicts")
      ->type_name("N")
      ->transform(AnyInteger());
  // All of them, as t2 train: the training ones are accepted and do nothing here.
  trainer::TrainFlags train_flags;
  trainer::AddTrainFlags(command_line, train_flags);
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  absl::Status s = Run(train_flags, flags);
  if (s.ok()) return 0;
  std::cerr << "t2 eval: " << s.message() << "\n";
  return absl::IsInvalidArgument(s) ? 2 : 1;
}

}  // namespace t2::cli
