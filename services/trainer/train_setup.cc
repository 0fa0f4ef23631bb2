#include "train_setup.h"

#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "t2/common/env.h"
#include "t2/common/status.h"
#include "t2/tasks/builtin.h"
#include "t2/tasks/jsonl.h"

namespace t2::trainer {

const char* const kTrainFlagsUsage = R"(model and task:
  --model PATH|default         the base model (default: the embedded SmolLM2-135M-Instruct)
  --task NAME                  a built-in task: math, reasoning, code, cls
  --data FILE.jsonl            or your own examples (gsm8k, arc or plain question/answer lines),
    --data-format F            auto|gsm8k|arc|plain (default auto)
    --verifier KIND            exact|numeric|choice|regex|category (required with --data)
    --name NAME                the task's name (default: the file's stem); the expert is NAME-svf
    --prompt-template T        the user message, "{question}" replaced (default "{question}")
    --answer-part P            what the verifier reads: whole, boxed (the last \boxed{}) or
                               final-value (what the last line states; default whole)
    --max-new-tokens N         answer length (default 64; built-in tasks set their own)
    --split-seed S --validation-fraction F --test-fraction F
                               how the file is split (defaults 0, 0.1, 0.2)
training (SVF.md §2; the defaults are the reference implementation's where it has one):
  --work-dir DIR               checkpoints, metrics.jsonl, the best expert (required)
  --steps N (100) --batch-size B (16) --micro-batch-size M (4)
  --lr X (2e-3) --max-grad-norm X (1e-3) --kl-coef λ (0) --seed S (0)
  --temperature T (0: greedy rollouts) --eval-every N (10) --validation-size N (0: all)
  --reward-baseline none|mean  none: ±1 rewards as the reference; mean: minus the mean reward
                               of the batch's other rollouts (for models that are mostly wrong)
  --targets mlp|attn|all (mlp)
engine:
  --device auto|cpu|cuda[:N] --dtype auto|float32|bfloat16|float16 --threads N
  --max-batch-size N (32: rollouts and evaluation decode together)
  --svf-cache-dir DIR          SVD cache (default: beside the model)
)";

void AddTrainFlags(FlagSpec& spec) {
  for (const char* f : {"model", "task", "data", "data-format", "verifier", "name", "prompt-template", "answer-part",
                        "max-new-tokens", "split-seed", "validation-fraction", "test-fraction", "work-dir", "steps",
                        "batch-size", "micro-batch-size", "lr", "max-grad-norm", "kl-coef", "seed", "temperature", "reward-baseline",
                        "eval-every", "validation-size", "targets", "device", "dtype", "threads", "max-batch-size",
                        "svf-cache-dir"}) {
    spec.value_flags.insert(f);
  }
}

namespace {

absl::Status Usage(std::string_view message) { return absl::InvalidArgumentError(AsAbsl(message)); }

absl::StatusOr<int32_t> Int32(const Flags& flags, const char* name, int32_t fallback) {
  T2_ASSIGN_OR_RETURN(int64_t v, flags.GetInt(name, fallback));
  if (v < INT32_MIN || v > INT32_MAX) return Usage(absl::StrCat("--", name, " is out of range"));
  return static_cast<int32_t>(v);
}

absl::StatusOr<tasks::AnswerPart> ParseAnswerPart(const std::string& part) {
  if (part == "whole") return tasks::AnswerPart::kWhole;
  if (part == "boxed") return tasks::AnswerPart::kLastBoxed;
  if (part == "final-value") return tasks::AnswerPart::kFinalValue;
  return Usage("--answer-part must be whole, boxed or final-value");
}

}  // namespace

absl::StatusOr<tasks::Task> TaskFromFlags(const Flags& flags) {
  const bool builtin = flags.Has("task"), data = flags.Has("data");
  if (builtin == data) return Usage("give exactly one of --task NAME and --data FILE");
  if (builtin) {
    for (const char* f : {"data-format", "verifier", "name", "split-seed", "validation-fraction", "test-fraction"}) {
      if (flags.Has(f)) return Usage(absl::StrCat("--", f, " goes with --data, not with a built-in --task"));
    }
    auto task = tasks::BuiltinTask(flags.Get("task", ""));
    if (!task.ok()) return Usage(absl::StrCat("--task: ", task.status().message()));
    if (flags.Has("max-new-tokens")) {
      T2_ASSIGN_OR_RETURN(task->max_new_tokens, Int32(flags, "max-new-tokens", 0));
    }
    // A built-in task may be asked another way (the expert then learns that way).
    if (flags.Has("prompt-template")) task->prompt_template = flags.Get("prompt-template", "");
    if (flags.Has("answer-part")) {
      T2_ASSIGN_OR_RETURN(task->answer_part, ParseAnswerPart(flags.Get("answer-part", "")));
    }
    return task;
  }
  const std::filesystem::path file = flags.Get("data", "");
  auto shape = tasks::ParseJsonlShape(flags.Get("data-format", "auto"));
  if (!shape.ok()) return Usage(absl::StrCat("--data-format: ", shape.status().message()));
  if (!flags.Has("verifier")) return Usage("--verifier is required with --data");
  auto verifier = adapt::ParseVerifierKind(flags.Get("verifier", ""));
  if (!verifier.ok()) return Usage(absl::StrCat("--verifier: ", verifier.status().message()));
  tasks::Task task;
  task.name = flags.Get("name", file.stem().string());
  task.verifier = *verifier;
  task.prompt_template = flags.Get("prompt-template", "{question}");
  T2_ASSIGN_OR_RETURN(task.answer_part, ParseAnswerPart(flags.Get("answer-part", "whole")));
  T2_ASSIGN_OR_RETURN(task.max_new_tokens, Int32(flags, "max-new-tokens", 64));
  T2_ASSIGN_OR_RETURN(int64_t split_seed, flags.GetInt("split-seed", 0));
  tasks::SplitFractions fractions;
  T2_ASSIGN_OR_RETURN(fractions.validation, flags.GetDouble("validation-fraction", fractions.validation));
  T2_ASSIGN_OR_RETURN(fractions.test, flags.GetDouble("test-fraction", fractions.test));
  T2_ASSIGN_OR_RETURN(std::vector<tasks::Example> examples, tasks::ReadJsonl(file, *shape));
  T2_RETURN_IF_ERROR(Annotate(tasks::SplitExamples(std::move(examples), static_cast<uint64_t>(split_seed), fractions, task),
                              "--data"));
  return task;
}

absl::StatusOr<engine::GeneratorOptions> GeneratorFromFlags(const Flags& flags,
                                                            const std::filesystem::path& model_path) {
  engine::GeneratorOptions g;
  g.model = model_path;
  g.device = flags.Get("device", "auto");
  g.dtype = flags.Get("dtype", "auto");
  T2_ASSIGN_OR_RETURN(g.cpu_threads, Int32(flags, "threads", 0));
  T2_ASSIGN_OR_RETURN(g.max_batch_size, Int32(flags, "max-batch-size", 32));
  g.svf = engine::SvfOptions{.targets = flags.Get("targets", "mlp"), .cache_dir = flags.Get("svf-cache-dir", "")};
  T2_RETURN_IF_ERROR(Annotate(g.Validate(), "engine flags"));
  return g;
}

absl::StatusOr<TrainSetup> TrainSetupFromFlags(const Flags& flags) {
  if (!flags.positional().empty()) return Usage(absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  TrainSetup s;
  T2_ASSIGN_OR_RETURN(s.model_path, ResolveModelPath(flags.Get("model", "default")));
  s.model_name = ModelName(s.model_path);
  T2_ASSIGN_OR_RETURN(s.task, TaskFromFlags(flags));
  T2_RETURN_IF_ERROR(s.task.Validate());
  T2_ASSIGN_OR_RETURN(s.generator, GeneratorFromFlags(flags, s.model_path));

  train::TrainOptions& t = s.train;
  if (!flags.Has("work-dir") || flags.Get("work-dir", "").empty()) return Usage("--work-dir is required");
  t.work_dir = flags.Get("work-dir", "");
  T2_ASSIGN_OR_RETURN(t.steps, Int32(flags, "steps", t.steps));
  T2_ASSIGN_OR_RETURN(t.batch_size, Int32(flags, "batch-size", t.batch_size));
  T2_ASSIGN_OR_RETURN(t.micro_batch_size, Int32(flags, "micro-batch-size", t.micro_batch_size));
  T2_ASSIGN_OR_RETURN(t.learning_rate, flags.GetDouble("lr", t.learning_rate));
  T2_ASSIGN_OR_RETURN(t.max_grad_norm, flags.GetDouble("max-grad-norm", t.max_grad_norm));
  T2_ASSIGN_OR_RETURN(t.kl_coef, flags.GetDouble("kl-coef", t.kl_coef));
  T2_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", 0));
  if (seed < 0) return Usage("--seed must be >= 0");
  t.seed = static_cast<uint64_t>(seed);
  T2_ASSIGN_OR_RETURN(double temperature, flags.GetDouble("temperature", 0));
  t.temperature = static_cast<float>(temperature);
  const std::string baseline = flags.Get("reward-baseline", "none");
  if (baseline != "none" && baseline != "mean") return Usage("--reward-baseline must be none or mean");
  t.reward_baseline = baseline == "mean" ? train::TrainOptions::RewardBaseline::kLeaveOneOutMean
                                         : train::TrainOptions::RewardBaseline::kNone;
  T2_ASSIGN_OR_RETURN(t.eval_every, Int32(flags, "eval-every", t.eval_every));
  T2_ASSIGN_OR_RETURN(t.validation_size, Int32(flags, "validation-size", t.validation_size));
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
