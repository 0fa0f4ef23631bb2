// One SVF training step, phase by phase, on a batch of a built-in task: rollouts through the
// generator (greedy, the expert merged), W' composed with autograd, forward and backward in
// micro-batches, clip + Adam. Writes the batch's prompt ids so that
// train_step_reference.py can time the same step in PyTorch (run_train_step_bench.sh runs
// both and prints them side by side).
//
//   train_step_bench MODEL TASK BATCH MICRO_BATCH MAX_NEW_TOKENS REPEATS OUT.json [THREADS] [DEVICE] [DTYPE]
// THREADS 0: the machine's; DEVICE cpu (default) or cuda; DTYPE auto (float32 on the CPU, bf16
// on a GPU), float32, bfloat16 or float16.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "svf_policy.h"
#include "t2/common/env.h"
#include "t2/engine/generator.h"
#include "t2/engine/model_access.h"
#include "t2/tasks/builtin.h"
#include "t2/train/evaluate.h"

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int Fail(const absl::Status& s) {
  std::cerr << "train_step_bench: " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 8) {
    std::cerr << "usage: train_step_bench MODEL TASK BATCH MICRO_BATCH MAX_NEW_TOKENS REPEATS OUT.json [THREADS] "
                 "[DEVICE] [DTYPE]\n";
    return 2;
  }
  auto model = t2::ResolveModelPath(argv[1]);
  if (!model.ok()) return Fail(model.status());
  auto task = t2::tasks::BuiltinTask(argv[2]);
  if (!task.ok()) return Fail(task.status());
  const int batch = std::atoi(argv[3]), micro = std::atoi(argv[4]), max_new = std::atoi(argv[5]),
            repeats = std::atoi(argv[6]);
  const std::string out_path = argv[7];
  const int threads = argc > 8 ? std::atoi(argv[8]) : 0;
  auto device = t2::model::DeviceSpec::Parse(argc > 9 ? argv[9] : "cpu");
  if (!device.ok()) return Fail(device.status());
  auto dtype = t2::model::ParseComputeDType(argc > 10 ? argv[10] : "auto");
  if (!dtype.ok()) return Fail(dtype.status());
  task->max_new_tokens = max_new;

  auto generator = t2::engine::Generator::Create({.model = *model,
                                                  .device = *device,
                                                  .dtype = *dtype,
                                                  .cpu_threads = threads,
                                                  .svf = t2::engine::SvfOptions{}});
  if (!generator.ok()) return Fail(generator.status());
  t2::engine::Generator& g = **generator;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < batch; ++i) {
    auto ids = t2::train::PromptIds(g, *task, task->train[i]);
    if (!ids.ok()) return Fail(ids.status());
    prompts.push_back(*ids);
  }
  const t2::svf::Decomposition* decomposition = nullptr;
  (void)t2::engine::TrainingAccess::WithModel(g, [&](const t2::engine::ModelAccess& a) {
    decomposition = &a.decomposition;
    return absl::OkStatus();
  });
  auto policy = t2::train::SvfPolicy::Create(*decomposition, 0, 2e-3);
  if (!policy.ok()) return Fail(policy.status());

  nlohmann::json result = {{"model", model->string()}, {"task", argv[2]}, {"batch", batch},
                           {"device", g.device_name()}, {"dtype", g.dtype_name()},
                           {"micro_batch", micro},       {"max_new_tokens", max_new}, {"prompts", prompts},
                           {"steps", nlohmann::json::array()}};
  std::cout << absl::StrFormat("%-6s %9s %9s %9s %9s %9s %9s %8s\n", "step", "rollout", "compose", "forward",
                               "backward", "update", "total", "tokens");
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    auto t = start;
    absl::Status s = t2::engine::TrainingAccess::AddExpert(
        g, "bench",
        (*policy)->ToExpert({.base_fingerprint = g.base_fingerprint(), .targets = decomposition->targets()}));
    if (!s.ok()) return Fail(s);
    std::vector<t2::engine::GenerationRequest> requests;
    for (const auto& p : prompts) requests.push_back({.prompt_ids = p, .max_new_tokens = max_new, .adapter = "bench"});
    auto generated = g.Generate(requests);
    if (!generated.ok()) return Fail(generated.status());
    const double rollout = Since(t);
    std::vector<t2::train::Rollout> rollouts;
    int64_t generated_tokens = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      rollouts.push_back({prompts[i], (*generated)[i].token_ids, i % 2 == 0 ? 1.0 : -1.0});
      generated_tokens += static_cast<int64_t>((*generated)[i].token_ids.size());
    }
    t2::train::GradientReport report;
    s = t2::engine::TrainingAccess::WithModel(g, [&](const t2::engine::ModelAccess& a) {
      auto gr = (*policy)->ComputeGradients(a.model, a.decomposition, rollouts, micro, /*kl_coef=*/0);
      if (!gr.ok()) return gr.status();
      report = *gr;
      return absl::OkStatus();
    });
    if (!s.ok()) return Fail(s);
    t = std::chrono::steady_clock::now();
    (*policy)->Step(1e-3);
    const double update = Since(t), total = Since(start);
    std::cout << absl::StrFormat("%-6d %8.2fs %8.2fs %8.2fs %8.2fs %8.2fs %8.2fs %8d\n", r + 1, rollout,
                                 report.compose_s, report.forward_s, report.backward_s, update, total,
                                 report.tokens);
    result["steps"].push_back({{"rollout_s", rollout}, {"compose_s", report.compose_s},
                               {"forward_s", report.forward_s}, {"backward_s", report.backward_s},
                               {"update_s", update}, {"total_s", total}, {"tokens", report.tokens},
                               {"generated_tokens", generated_tokens}});
  }
  std::ofstream(out_path) << result.dump();
  return 0;
}
