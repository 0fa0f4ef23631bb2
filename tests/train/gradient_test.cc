// The SVF REINFORCE objective against PyTorch (make_train_fixtures.py): for fixed rollouts and
// rewards on a tiny random Llama that transformers saved, the loss (REINFORCE + λ·KL) and its
// gradient with respect to every p, through transformers' own forward pass with W'
// substituted, must match ours (LlamaModel::ForwardTrain, W' from our SVD) within 1e-4
// relative, for the mlp and all target sets, with and without the KL term; and one optimiser
// step on those gradients (clip to 1e-3, Adam lr 2e-3) must land where torch's lands.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "svf_policy.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "testing/reference_data.h"

namespace t2::train {
namespace {

using nlohmann::json;

at::Tensor Vector(const json& values) { return at::tensor(values.get<std::vector<float>>(), at::kFloat); }

double RelativeError(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor e = expected.to(at::kDouble);
  return (actual.to(at::kDouble) - e).norm().item<double>() / e.norm().item<double>();
}

struct Case {
  std::string targets;
  double kl_coef;
};

class GradientTest : public ::testing::TestWithParam<Case> {};

TEST_P(GradientTest, LossGradientAndStepMatchPyTorch) {
  const Case c = GetParam();
  const json ref = testing::ReadJson(testing::FixturesDir("train") /
                                     (c.kl_coef > 0 ? "gradient_" + c.targets + "_0.2.json" : "gradient_" + c.targets + "_0.json"));
  auto model = model::LlamaModel::Load(testing::FixturesDir("train") / "tiny_chat",
                                       {.device = t2::model::DeviceSpec::Cpu()});
  ASSERT_TRUE(model.ok()) << model.status();
  auto targets = svf::ParseTargetSet(c.targets);
  ASSERT_TRUE(targets.ok());
  auto decomposition = svf::Decomposition::Build(**model, {.targets = *targets});
  ASSERT_TRUE(decomposition.ok()) << decomposition.status();
  auto policy = SvfPolicy::Create(*decomposition, /*seed=*/0, /*learning_rate=*/2e-3);
  ASSERT_TRUE(policy.ok()) << policy.status();

  std::map<std::string, at::Tensor> p;
  for (const auto& [name, values] : ref["p"].items()) p[name] = Vector(values);
  ASSERT_EQ(p.size(), decomposition->names().size());
  ASSERT_TRUE((*policy)->SetP(p).ok());
  std::vector<Rollout> rollouts;
  for (const json& r : ref["rollouts"]) {
    rollouts.push_back({r["prompt"].get<std::vector<int32_t>>(), r["completion"].get<std::vector<int32_t>>(),
                        r["reward"].get<double>()});
  }
  // Micro-batches of 2 over 3 rollouts of different lengths: padding and accumulation.
  auto report = (*policy)->ComputeGradients(**model, *decomposition, rollouts, /*micro_batch_size=*/2, c.kl_coef);
  ASSERT_TRUE(report.ok()) << report.status();
  const double ref_loss = ref["loss"].get<double>();
  EXPECT_LE(std::abs(report->loss - ref_loss), 1e-4 * std::abs(ref_loss)) << report->loss << " vs " << ref_loss;
  if (c.kl_coef > 0) {
    EXPECT_GT(report->kl, 0);
  }

  std::vector<at::Tensor> ours, theirs;
  for (const auto& [name, values] : ref["grad"].items()) {
    const at::Tensor g = (*policy)->p().at(name).grad();
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_LE(RelativeError(g, Vector(values)), 1e-4) << name;
    ours.push_back(g.flatten());
    theirs.push_back(Vector(values));
  }
  EXPECT_LE(RelativeError(at::cat(ours), at::cat(theirs)), 1e-4);

  // The step on the reference's own gradients: Adam divides each element by its own size, so
  // an element thousands of times smaller than the norm would turn a 1e-4 difference in the
  // gradient into a larger one in its step; this compares the optimiser alone.
  for (const auto& [name, values] : ref["grad"].items()) (*policy)->p().at(name).mutable_grad() = Vector(values);
  const double norm = (*policy)->Step(1e-3);
  EXPECT_LE(std::abs(norm - ref["grad_norm"].get<double>()), 1e-4 * ref["grad_norm"].get<double>());
  for (const auto& [name, values] : ref["p_after"].items()) {
    // The step itself, which is ~lr: p's own magnitude would hide an error in it.
    const at::Tensor step = (*policy)->p().at(name).detach() - p.at(name);
    EXPECT_LE(RelativeError(step, Vector(values) - p.at(name)), 1e-4) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(TargetsAndKl, GradientTest,
                         ::testing::Values(Case{"mlp", 0.0}, Case{"mlp", 0.2}, Case{"all", 0.0}, Case{"all", 0.2}),
                         [](const auto& info) {
                           return info.param.targets + (info.param.kl_coef > 0 ? "_kl" : "_no_kl");
                         });

}  // namespace
}  // namespace t2::train
