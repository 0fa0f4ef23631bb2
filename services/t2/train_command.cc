// t2 train: train an SVF expert locally (no registry): progress per step on stderr, the best
// expert kept in the run's folder (and copied to --out), optionally a training-curve plot and
// the test split judged against the base model with the publish gate's test.
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "commands.h"
#include "plot.h"
#include "t2/common/atomic_file.h"
#include "t2/common/command_line.h"
#include "t2/common/status.h"
#include "t2/train/evaluate.h"
#include "t2/train/gate.h"
#include "t2/train/trainer.h"
#include "train_setup.h"

namespace t2::cli {
namespace {

absl::Status CopyFile(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", from.string()));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return WriteFileAtomically(to, bytes);
}

absl::Status EvaluateAgainstBase(engine::Generator& generator, const trainer::TrainSetup& setup,
                                 const train::TrainResult& trained, int64_t test_size) {
  T2_RETURN_IF_ERROR(generator.AddExpert("eval:expert", trained.expert));
  std::span<const tasks::Example> test(setup.task.test);
  if (test_size > 0 && static_cast<size_t>(test_size) < test.size()) test = test.first(static_cast<size_t>(test_size));
  std::cerr << "[train] evaluating the base model and the expert on " << test.size() << " test examples\n";
  T2_ASSIGN_OR_RETURN(train::EvalResult base, train::Evaluate(generator, setup.task, test, ""));
  T2_ASSIGN_OR_RETURN(train::EvalResult expert, train::Evaluate(generator, setup.task, test, "eval:expert"));
  T2_ASSIGN_OR_RETURN(train::GateResult gate, train::Decide(expert.correct, base.correct, {}));
  std::cout << absl::StrFormat("test (n = %d): base %.4f, expert %.4f, gain %+.4f, McNemar p = %.4g (%d vs %d)\n",
                               gate.n, gate.current_accuracy, gate.candidate_accuracy,
                               gate.candidate_accuracy - gate.current_accuracy, gate.p_value, gate.candidate_only,
                               gate.current_only);
  return absl::OkStatus();
}

}  // namespace

int RunTrain(const std::vector<std::string>& args) {
  CommandLine command_line(
      "t2 train", "Trains an SVF expert locally (no registry), with progress per step on stderr.");
  std::string out, plot;
  bool evaluate = false;
  int64_t test_size = 0;
  CLI::App* output = command_line.add_option_group("Output");
  output->add_option("--out", out, "copy the best expert here")->type_name("FILE");
  output->add_option("--plot", plot, "draw reward and validation accuracy against the step")
      ->type_name("FILE.png");
  output->add_flag("--evaluate", evaluate,
                   "judge the expert against the base model on the test split");
  output->add_option("--test-size", test_size, "test examples --evaluate uses (0: the whole split)")
      ->type_name("N")
      ->transform(IntIn(INT64_MIN, INT64_MAX).description(""));  // any, as before: no range to show
  trainer::TrainFlags train_flags;
  trainer::AddTrainFlags(command_line, train_flags);
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  auto setup = trainer::TrainSetupFromFlags(train_flags);
  if (!setup.ok()) {
    std::cerr << "t2 train: " << setup.status().message() << "\n";
    return absl::IsInvalidArgument(setup.status()) ? 2 : 1;
  }
  auto fail = [](const absl::Status& s) {
    std::cerr << "t2 train: " << s.message() << "\n";
    return 1;
  };
  auto generator = engine::Generator::Create(setup->generator);
  if (!generator.ok()) return fail(generator.status());
  std::cerr << absl::StrFormat("[train] %s on %s: %d train / %d validation / %d test examples\n", setup->task.name,
                               setup->model_name, setup->task.train.size(), setup->task.validation.size(),
                               setup->task.test.size());
  auto trained = train::Train(**generator, setup->task, setup->train,
                              [](const train::StepReport& r) { trainer::PrintStep(r, std::cerr); });
  if (!trained.ok()) return fail(trained.status());
  std::cout << absl::StrFormat("expert %s: best validation accuracy %.4f at step %d of %d (training %.0f s)\n",
                               trained->expert.string(), trained->best_validation_accuracy, trained->best_step,
                               trained->steps, trained->train_seconds);
  if (!out.empty()) {
    if (auto s = CopyFile(trained->expert, out); !s.ok()) return fail(s);
    std::cout << "wrote " << out << "\n";
  }
  if (!plot.empty()) {
    if (auto s =
            trainer::PlotTraining(trained->run_dir / "metrics.jsonl", plot,
                                  absl::StrCat(setup->task.name, " expert on ", setup->model_name));
        !s.ok()) {
      return fail(s);
    }
    std::cout << "wrote " << plot << "\n";
  }
  if (evaluate) {
    if (auto s = EvaluateAgainstBase(**generator, *setup, *trained, test_size); !s.ok())
      return fail(s);
  }
  return 0;
}

}  // namespace t2::cli
