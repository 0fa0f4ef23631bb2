#include "train_setup.h"

#include <cstdint>
#include <ostream>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "t2/common/env.h"
#include "t2/common/status.h"
#include "t2/model/device_flags.h"
#include "t2/tasks/builtin.h"
#include "t2/tasks/jsonl.h"

namespace t2::trainer {

namespace {

absl::Status Usage(std::string_view message) { return absl::InvalidArgumentError(AsAbsl(message)); }

// What a flag without a range of its own accepts: any int32, any finite number (of a sane
// size), as before; the options' Validate then says which values make sense, with the field's
// own message. No range worth showing in --help (an error still names the bounds).
constexpr double kAnyNumber = 1e300;
CLI::Validator AnyInt32() { return IntIn(INT32_MIN, INT32_MAX).description(""); }
CLI::Validator AnyInt64() { return IntIn(INT64_MIN, INT64_MAX).description(""); }
CLI::Validator AnyNumber() { return NumberIn(-kAnyNumber, kAnyNumber).description(""); }

absl::StatusOr<tasks::AnswerPart> ParseAnswerPart(const std::string& part) {
  if (part == "whole") return tasks::AnswerPart::kWhole;
  if (part == "boxed") return tasks::AnswerPart::kLastBoxed;
  if (part == "final-value") return tasks::AnswerPart::kFinalValue;
  return Usage("--answer-part must be whole, boxed or final-value");
}

// "Model and task": the base model, and the built-in task or the --data file and how to read it.
void AddModelAndTaskFlags(CLI::App& app, TrainFlags& f) {
  CLI::App* task = app.add_option_group("Model and task", "--task NAME or --data FILE is required");
  task->add_option("--model", f.model,
                   "the base model: a .gguf file, an HF checkpoint folder, or the embedded "
                   "SmolLM2-135M-Instruct (default)")
      ->type_name("PATH|default");
  std::vector<std::string> builtin;
  for (std::string_view name : tasks::BuiltinTaskNames()) builtin.emplace_back(name);
  task->add_option("--task", f.task, "a built-in task")
      ->type_name("NAME")
      ->transform(OneOf(builtin));
  task->add_option("--data", f.data,
                   "or your own examples (gsm8k, arc or plain question/answer lines)")
      ->type_name("FILE.jsonl");
  task->add_option("--data-format", f.data_format, "with --data: the lines' shape (default auto)")
      ->type_name("F")
      ->transform(OneOf({"auto", "gsm8k", "arc", "plain"}));
  task->add_option("--verifier", f.verifier, "with --data (required): how an answer is judged")
      ->type_name("KIND")
      ->transform(OneOf({"exact", "numeric", "choice", "regex", "category"}));
  task->add_option(
          "--name", f.name,
          "with --data: the task's name (default: the file's stem); the expert is NAME-svf")
      ->type_name("NAME");
  task->add_option("--prompt-template", f.prompt_template,
                   "the user message, \"{question}\" replaced (default \"{question}\"; a built-in "
                   "task asked "
                   "another way teaches the expert that way)")
      ->type_name("T");
  task->add_option("--answer-part", f.answer_part,
                   "what the verifier reads: whole, boxed (the last \\boxed{}) or final-value "
                   "(what the last line "
                   "states); default whole")
      ->type_name("P")
      ->transform(OneOf({"whole", "boxed", "final-value"}));
  task->add_option("--max-new-tokens", f.max_new_tokens,
                   "answer length (default 64; built-in tasks set their own)")
      ->type_name("N")
      ->transform(AnyInt32());
  task->add_option("--split-seed", f.split_seed,
                   "with --data: the shuffle before the file is split (default 0)")
      ->type_name("S")
      ->transform(AnyInt64());
  task->add_option("--validation-fraction", f.validation_fraction,
                   absl::StrCat("with --data: the share of validation examples (default ",
                                tasks::SplitFractions{}.validation, ")"))
      ->type_name("F")
      ->transform(AnyNumber());
  task->add_option("--test-fraction", f.test_fraction,
                   absl::StrCat("with --data: the share of test examples (default ",
                                tasks::SplitFractions{}.test, ")"))
      ->type_name("F")
      ->transform(AnyNumber());
}

// "Training": train::TrainOptions.
void AddTrainingFlags(CLI::App& app, TrainFlags& f) {
  CLI::App* training = app.add_option_group(
      "Training", "SVF.md §2; the defaults are the reference implementation's where it has one");
  training
      ->add_option("--work-dir", f.work_dir,
                   "checkpoints, metrics.jsonl, the best expert (required to train)")
      ->type_name("DIR");
  training->add_option("--steps", f.steps, "training steps")->type_name("N")->transform(AnyInt32());
  training->add_option("--batch-size", f.batch_size, "prompts per step, one rollout each")
      ->type_name("B")
      ->transform(AnyInt32());
  training
      ->add_option("--micro-batch-size", f.micro_batch_size, "sequences per forward/backward pass")
      ->type_name("M")
      ->transform(AnyInt32());
  training->add_option("--lr", f.lr, "learning rate (Adam)")
      ->type_name("X")
      ->transform(AnyNumber());
  training
      ->add_option("--max-grad-norm", f.max_grad_norm, "gradients clipped to this global L2 norm")
      ->type_name("X")
      ->transform(AnyNumber());
  training
      ->add_option("--kl-coef", f.kl_coef, "λ of the KL penalty against the base model (0: none)")
      ->type_name("X")
      ->transform(AnyNumber());
  training->add_option("--seed", f.seed, "data order, the expert's initialisation, sampling")
      ->type_name("S")
      ->transform(IntIn(0, INT64_MAX));
  training->add_option("--temperature", f.temperature, "of the rollouts (0: greedy)")
      ->type_name("T")
      ->transform(AnyNumber());
  training->add_option("--eval-every", f.eval_every, "validation every N steps and after the last")
      ->type_name("N")
      ->transform(AnyInt32());
  training->add_option("--validation-size", f.validation_size, "validation examples used (0: all)")
      ->type_name("N")
      ->transform(AnyInt32());
  training
      ->add_option("--reward-baseline", f.reward_baseline,
                   "none: ±1 rewards as the reference; mean: minus the mean reward of the batch's "
                   "other rollouts "
                   "(for models that are mostly wrong)")
      ->type_name("B")
      ->transform(OneOf({"none", "mean"}));
  AddEnumOption(*training, "--targets", f.targets, svf::kTargetSets, svf::TargetSetName,
                "the matrices the expert adapts");
}

// "Engine": engine::GeneratorOptions.
void AddEngineFlags(CLI::App& app, TrainFlags& f) {
  CLI::App* engine = app.add_option_group("Engine");
  model::AddDeviceFlags(*engine, f.device, f.dtype);
  engine->add_option("--threads", f.threads, "CPU threads (0: one per core)")
      ->type_name("N")
      ->transform(AnyInt32());
  engine
      ->add_option("--max-batch-size", f.max_batch_size,
                   "sequences decoded together (rollouts and evaluation)")
      ->type_name("N")
      ->transform(AnyInt32());
  engine->add_option("--svf-cache-dir", f.svf_cache_dir, "SVD cache (default: beside the model)")
      ->type_name("DIR");
}

}  // namespace

// One function per --help section, in --help's order.
void AddTrainFlags(CLI::App& app, TrainFlags& f) {
  AddModelAndTaskFlags(app, f);
  AddTrainingFlags(app, f);
  AddEngineFlags(app, f);
}

absl::StatusOr<tasks::Task> TaskFromFlags(const TrainFlags& flags) {
  const bool builtin = !flags.task.empty(), data = !flags.data.empty();
  if (builtin == data) return Usage("give exactly one of --task NAME and --data FILE");
  if (builtin) {
    for (const auto& [flag, given] :
         {std::pair<const char*, bool>{"data-format", flags.data_format.has_value()},
          {"verifier", !flags.verifier.empty()},
          {"name", flags.name.has_value()},
          {"split-seed", flags.split_seed.has_value()},
          {"validation-fraction", flags.validation_fraction.has_value()},
          {"test-fraction", flags.test_fraction.has_value()}}) {
      if (given)
        return Usage(absl::StrCat("--", flag, " goes with --data, not with a built-in --task"));
    }
    auto task = tasks::BuiltinTask(flags.task);
    if (!task.ok()) return Usage(absl::StrCat("--task: ", task.status().message()));
    if (flags.max_new_tokens.has_value()) task->max_new_tokens = *flags.max_new_tokens;
    // A built-in task may be asked another way (the expert then learns that way).
    if (flags.prompt_template.has_value()) task->prompt_template = *flags.prompt_template;
    if (flags.answer_part.has_value()) {
      T2_ASSIGN_OR_RETURN(task->answer_part, ParseAnswerPart(*flags.answer_part));
    }
    return task;
  }
  const std::filesystem::path file = flags.data;
  auto shape = tasks::ParseJsonlShape(flags.data_format.value_or("auto"));
  if (!shape.ok()) return Usage(absl::StrCat("--data-format: ", shape.status().message()));
  if (flags.verifier.empty()) return Usage("--verifier is required with --data");
  auto verifier = adapt::ParseVerifierKind(flags.verifier);
  if (!verifier.ok()) return Usage(absl::StrCat("--verifier: ", verifier.status().message()));
  tasks::Task task;  // its defaults: the prompt template, answer part and length of a file's task
  task.name = flags.name.value_or(file.stem().string());
  task.verifier = *verifier;
  task.prompt_template = flags.prompt_template.value_or(task.prompt_template);
  T2_ASSIGN_OR_RETURN(task.answer_part, ParseAnswerPart(flags.answer_part.value_or("whole")));
  task.max_new_tokens = flags.max_new_tokens.value_or(task.max_new_tokens);
  tasks::SplitFractions fractions;
  fractions.validation = flags.validation_fraction.value_or(fractions.validation);
  fractions.test = flags.test_fraction.value_or(fractions.test);
  T2_ASSIGN_OR_RETURN(std::vector<tasks::Example> examples, tasks::ReadJsonl(file, *shape));
  const auto split_seed = static_cast<uint64_t>(flags.split_seed.value_or(0));
  T2_RETURN_IF_ERROR(
      Annotate(tasks::SplitExamples(std::move(examples), split_seed, fractions, task), "--data"));
  return task;
}

absl::StatusOr<engine::GeneratorOptions> GeneratorFromFlags(
    const TrainFlags& flags, const std::filesystem::path& model_path) {
  engine::GeneratorOptions g;
  g.model = model_path;
  g.device = flags.device;
  g.dtype = flags.dtype;
  g.cpu_threads = flags.threads;
  g.max_batch_size = flags.max_batch_size;
  g.svf = engine::SvfOptions{.targets = flags.targets, .cache_dir = flags.svf_cache_dir};
  T2_RETURN_IF_ERROR(Annotate(g.Validate(), "engine flags"));
  return g;
}

absl::StatusOr<TrainSetup> TrainSetupFromFlags(const TrainFlags& flags) {
  TrainSetup s;
  T2_ASSIGN_OR_RETURN(s.model_path, ResolveModelPath(flags.model));
  s.model_name = ModelName(s.model_path);
  T2_ASSIGN_OR_RETURN(s.task, TaskFromFlags(flags));
  T2_RETURN_IF_ERROR(s.task.Validate());
  T2_ASSIGN_OR_RETURN(s.generator, GeneratorFromFlags(flags, s.model_path));

  train::TrainOptions& t = s.train;
  if (flags.work_dir.empty()) return Usage("--work-dir is required");
  t.work_dir = flags.work_dir;
  t.steps = flags.steps;
  t.batch_size = flags.batch_size;
  t.micro_batch_size = flags.micro_batch_size;
  t.learning_rate = flags.lr;
  t.max_grad_norm = flags.max_grad_norm;
  t.kl_coef = flags.kl_coef;
  // The flag's range says so too; this is for callers that fill TrainFlags themselves.
  if (flags.seed < 0) return Usage("--seed must be >= 0");
  t.seed = static_cast<uint64_t>(flags.seed);
  t.temperature = static_cast<float>(flags.temperature);
  if (flags.reward_baseline != "none" && flags.reward_baseline != "mean") {
    return Usage("--reward-baseline must be none or mean");
  }
  t.reward_baseline = flags.reward_baseline == "mean"
                          ? train::TrainOptions::RewardBaseline::kLeaveOneOutMean
                          : train::TrainOptions::RewardBaseline::kNone;
  t.eval_every = flags.eval_every;
  t.validation_size = flags.validation_size;
  t.base_model = s.model_name;
  if (auto v = t.Validate(); !v.ok()) {
    // "train.batch_size must be >= 1" -> "--batch-size must be >= 1"
    std::string message(v.message());
    if (message.rfind("train.", 0) == 0) {
      message = message.substr(6);
      const size_t end = message.find_first_of(" :");
      std::string field = message.substr(0, end);
      for (char& c : field) c = c == '_' ? '-' : c;
      if (field == "learning-rate") field = "lr";
      message = absl::StrCat("--", field, message.substr(end));
    }
    return Usage(message);
  }
  return s;
}

void PrintStep(const train::StepReport& r, std::ostream& out) {
  auto duration = [](double s) {
    const int64_t t = static_cast<int64_t>(s + 0.5);
    return t >= 3600 ? absl::StrFormat("%dh%02dm", t / 3600, t / 60 % 60) : absl::StrFormat("%dm%02ds", t / 60, t % 60);
  };
  if (r.step == 0) {
    out << absl::StrFormat("[train] step 0/%d  validation %.3f (the initial expert, %.1f s)\n", r.steps,
                           r.validation_accuracy.value_or(0), r.seconds);
    return;
  }
  out << absl::StrFormat("[train] step %d/%d  reward %+.3f  acc %.3f  loss %.4f  kl %.5f", r.step, r.steps,
                         r.reward_mean, r.train_accuracy, r.loss, r.kl);
  if (r.validation_accuracy.has_value()) out << absl::StrFormat("  val %.3f", *r.validation_accuracy);
  out << absl::StrFormat("  %.0f tok/s  %.1f s  ETA %s\n", r.tokens_per_s, r.seconds, duration(r.eta_s));
}

}  // namespace t2::trainer
