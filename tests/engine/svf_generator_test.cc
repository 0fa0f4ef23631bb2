// Generation with SVF experts on the default model: a constant-z expert generates exactly
// what the base model does; a batch mixing four experts (factored form) gives every request
// the tokens and log-probs it gets alone with its W' rebuilt into the weights (merged form);
// mixtures; and the errors a caller can make.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "t2/engine/generator.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"
#include "testing/reference_data.h"
#include "testing/scratch_dir.h"

namespace t2::engine {
namespace {

using ::testing::HasSubstr;

const std::vector<std::string> kQuestions = {"What is the capital of France?", "Write a haiku about rain.",
                                             "What is 12 times 7?", "Name three primary colors."};

// The default model's SVD cache in its own folder (where the worker and t2 keep it by
// default), shared with the other tests that adapt the default model: computing it takes half
// a minute, and a cache written by another test is the same decomposition (keyed by the
// weights' fingerprint, written atomically).
std::filesystem::path SvdCacheDir() { return t2::testing::DefaultModelPath().parent_path(); }

int LiveThreads() {
  const std::filesystem::directory_iterator tasks("/proc/self/task");
  return static_cast<int>(std::distance(begin(tasks), end(tasks)));
}

// OpenMP's and MKL's thread counts are per thread, and a generator's forwards run on its
// scheduler's thread. On a model this small the first work there that MKL spreads over
// threads is composing W' (its elementwise work stays below LibTorch's own threading):
// unless the scheduler's thread took the generator's count first, MKL starts a pool of one
// thread per core for it, whatever cpu_threads says. First in the file: no other generator
// is about yet.
TEST(SvfGeneratorThreads, OneCpuThreadMeansTheSchedulerAlone) {
  const auto model = t2::testing::FixturesDir("train") / "tiny_chat";
  t2::testing::ScratchDir dir;
  auto base = model::LlamaModel::Load(model, {.device = t2::model::DeviceSpec::Cpu()});
  ASSERT_TRUE(base.ok()) << base.status();
  auto decomposition =
      svf::Decomposition::Build(**base, {.targets = svf::TargetSet::kMlp, .cache_dir = dir.path()});
  ASSERT_TRUE(decomposition.ok()) << decomposition.status();
  ASSERT_TRUE(svf::WriteExpert(svf::ConstantExpert(*decomposition, 0.9f, "tiny_chat"),
                               dir / "e.safetensors")
                  .ok());

  const int default_threads = at::get_num_threads();
  const int before = LiveThreads();
  {
    auto g =
        Generator::Create({.model = model,
                           .device = t2::model::DeviceSpec::Cpu(),
                           .cpu_threads = 1,
                           .svf = SvfOptions{.cache_dir = dir.path(), .mode = SvfMode::kMerged}});
    ASSERT_TRUE(g.ok()) << g.status();
    ASSERT_TRUE((*g)->AddExpert("e", dir / "e.safetensors").ok());
    GenerationRequest r;
    r.prompt_ids = (*g)->tokenizer().Encode("What is 2 plus one?", false);
    r.max_new_tokens = 2;
    r.adapter = "e";
    auto result = (*g)->Generate(std::span(&r, 1));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(LiveThreads(), before + 1);  // the scheduler's own
  }
  at::set_num_threads(default_threads);  // the count is process-wide: the later tests keep theirs
}

class SvfGeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new t2::testing::ScratchDir;
    const auto model = t2::testing::DefaultModelPath();
    auto make = [&](SvfMode mode) {
      auto g = Generator::Create({.model = model,
                                  .device = t2::model::DeviceSpec::Cpu(),
                                  .svf = SvfOptions{.cache_dir = SvdCacheDir(), .mode = mode}});
      EXPECT_TRUE(g.ok()) << g.status();
      return g.ok() ? g->release() : nullptr;
    };
    factored_ = make(SvfMode::kFactored);  // computes the decomposition unless it is cached
    merged_ = make(SvfMode::kMerged);      // loads it
    ASSERT_NE(factored_, nullptr);
    ASSERT_NE(merged_, nullptr);

    // Experts made against the same decomposition (a third load, from the cache).
    auto base = model::LlamaModel::Load(model, {.device = t2::model::DeviceSpec::Cpu()});
    ASSERT_TRUE(base.ok()) << base.status();
    auto decomposition = svf::Decomposition::Build(
        **base, {.targets = svf::TargetSet::kMlp, .cache_dir = SvdCacheDir()});
    ASSERT_TRUE(decomposition.ok()) << decomposition.status();
    EXPECT_TRUE(decomposition->loaded_from_cache());
    auto constant = svf::ConstantExpert(*decomposition, 0.7f, "SmolLM2-135M-Instruct");
    ASSERT_TRUE(svf::WriteExpert(constant, *dir_ / "constant.safetensors").ok());
    for (int k = 0; k < 4; ++k) {
      svf::Expert e = svf::ConstantExpert(*decomposition, 1.0f, "SmolLM2-135M-Instruct");
      auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + k);
      for (auto& [name, z] : e.z) z = at::rand(z.sizes(), gen) * 1.2 + 0.4;
      e.metadata.task = "random" + std::to_string(k);
      ASSERT_TRUE(svf::WriteExpert(e, *dir_ / ("random" + std::to_string(k) + ".safetensors")).ok());
    }
    for (Generator* g : {factored_, merged_}) {
      ASSERT_TRUE(g->AddExpert("constant", *dir_ / "constant.safetensors").ok());
      for (int k = 0; k < 4; ++k) {
        auto s = g->AddExpert("random" + std::to_string(k), *dir_ / ("random" + std::to_string(k) + ".safetensors"));
        ASSERT_TRUE(s.ok()) << s;
      }
    }
  }
  static void TearDownTestSuite() {
    delete factored_;
    delete merged_;
    delete dir_;
  }

  static GenerationRequest Chat(Generator& g, const std::string& question, const std::string& adapter,
                                int32_t max_new = 24) {
    const std::string text = "<|im_start|>user\n" + question + "<|im_end|>\n<|im_start|>assistant\n";
    GenerationRequest r;
    r.prompt_ids = g.tokenizer().Encode(text, false);
    r.max_new_tokens = max_new;
    r.adapter = adapter;
    r.return_logprobs = true;
    return r;
  }

  static std::vector<GenerationResult> Run(Generator& g, const std::vector<GenerationRequest>& requests) {
    auto results = g.Generate(requests);
    EXPECT_TRUE(results.ok()) << results.status();
    return results.ok() ? *results : std::vector<GenerationResult>(requests.size());
  }

  static t2::testing::ScratchDir* dir_;  // the experts the tests load
  static Generator* factored_;
  static Generator* merged_;
};
t2::testing::ScratchDir* SvfGeneratorTest::dir_ = nullptr;
Generator* SvfGeneratorTest::factored_ = nullptr;
Generator* SvfGeneratorTest::merged_ = nullptr;

TEST_F(SvfGeneratorTest, ConstantExpertGeneratesWhatTheBaseModelDoes) {
  for (Generator* g : {factored_, merged_}) {
    std::vector<GenerationRequest> base, constant;
    for (const auto& q : kQuestions) {
      base.push_back(Chat(*g, q, ""));
      constant.push_back(Chat(*g, q, "constant"));
    }
    auto a = Run(*g, base);
    auto b = Run(*g, constant);
    for (size_t i = 0; i < kQuestions.size(); ++i) {
      EXPECT_EQ(a[i].token_ids, b[i].token_ids) << kQuestions[i];
      EXPECT_FALSE(a[i].token_ids.empty());
    }
  }
}

TEST_F(SvfGeneratorTest, MixedBatchFactoredEqualsEachExpertMerged) {
  // One batch: four experts and one base row, factored.
  std::vector<GenerationRequest> batch;
  for (int k = 0; k < 4; ++k) batch.push_back(Chat(*factored_, kQuestions[k], "random" + std::to_string(k)));
  batch.push_back(Chat(*factored_, kQuestions[0], ""));
  auto together = Run(*factored_, batch);
  int changed = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    // Alone, with W' rebuilt into the weights.
    auto alone = Run(*merged_, {batch[i]});
    EXPECT_EQ(together[i].token_ids, alone[0].token_ids) << "request " << i;
    ASSERT_EQ(together[i].logprobs.size(), alone[0].logprobs.size());
    // The first token comes from one forward pass over the prompt: within 1e-4 like logits.
    // Later ones sit on KV caches that already differ by rounding (W' rounded once to
    // float32 against the factors applied in float32), which grows slowly with length.
    for (size_t t = 0; t < alone[0].logprobs.size(); ++t) {
      EXPECT_NEAR(together[i].logprobs[t], alone[0].logprobs[t], t == 0 ? 1e-4 : 1e-3)
          << "request " << i << " token " << t;
    }
    if (i < 4) {
      auto base = Run(*merged_, {Chat(*merged_, kQuestions[i], "")});
      changed += base[0].token_ids != alone[0].token_ids;
    }
  }
  EXPECT_GE(changed, 2) << "the random experts should change most answers, or this test proves little";
}

TEST_F(SvfGeneratorTest, MergedModeRegroupsAMixedBatch) {
  std::vector<GenerationRequest> batch = {Chat(*merged_, kQuestions[1], "random1"), Chat(*merged_, kQuestions[2], ""),
                                          Chat(*merged_, kQuestions[3], "random1"), Chat(*merged_, kQuestions[0], "random2")};
  auto together = Run(*merged_, batch);
  for (size_t i = 0; i < batch.size(); ++i) {
    auto alone = Run(*factored_, {batch[i]});
    EXPECT_EQ(together[i].token_ids, alone[0].token_ids) << "request " << i;
  }
}

TEST_F(SvfGeneratorTest, MergedSetsAreCachedWithinTheBudget) {
  // One composed MLP set of this model is 318 MB; the default budget (512 MB) holds one.
  auto run = [&](const std::string& adapter) { Run(*merged_, {Chat(*merged_, kQuestions[0], adapter, 2)}); };
  run("random3");
  const auto start = merged_->svf_stats();
  EXPECT_EQ(start.merged_cache_entries, 1);
  EXPECT_GT(start.merged_cache_bytes, 300'000'000);
  EXPECT_LE(start.merged_cache_bytes, SvfOptions{}.merged_cache_bytes);
  run("random3");  // already in the weights
  run("");         // base restored: no composition
  run("random3");  // from the LRU: no composition
  EXPECT_EQ(merged_->svf_stats().compositions, start.compositions);
  run("random2");  // composed; evicts random3 to stay within the budget
  run("random3");  // composed again
  const auto end = merged_->svf_stats();
  EXPECT_EQ(end.compositions, start.compositions + 2);
  EXPECT_EQ(end.merged_cache_entries, 1);
  EXPECT_LE(end.merged_cache_bytes, SvfOptions{}.merged_cache_bytes);
}

TEST_F(SvfGeneratorTest, MixtureOfOneExpertEqualsTheExpert) {
  ASSERT_TRUE(factored_->AddMixture("only1", {"random1"}, {1.0}).ok());
  ASSERT_TRUE(factored_->AddMixture("half", {"random1", "random2"}, {3.0, 3.0}).ok());
  ASSERT_TRUE(factored_->AddMixture("half_again", {"random2", "random1"}, {0.5, 0.5}).ok());
  auto r = Run(*factored_, {Chat(*factored_, kQuestions[1], "random1"), Chat(*factored_, kQuestions[1], "only1"),
                            Chat(*factored_, kQuestions[2], "half"), Chat(*factored_, kQuestions[2], "half_again")});
  EXPECT_EQ(r[0].token_ids, r[1].token_ids);
  EXPECT_EQ(r[2].token_ids, r[3].token_ids) << "α is normalised, and the order of experts does not matter";
  EXPECT_TRUE(factored_->RemoveAdapter("only1").ok());
  EXPECT_TRUE(factored_->RemoveAdapter("half").ok());
  EXPECT_TRUE(factored_->RemoveAdapter("half_again").ok());
}

// In auto mode a Score over one expert whose W' is not composed runs factored: CEM scores each
// candidate mixture once, and composing its W' would cost several such forwards. The scores
// equal the merged form's; a decode batch of that expert still merges it, once.
TEST_F(SvfGeneratorTest, AutoModeScoresAnUncomposedExpertFactored) {
  auto g = Generator::Create({.model = t2::testing::DefaultModelPath(),
                              .device = t2::model::DeviceSpec::Cpu(),
                              .svf = SvfOptions{.cache_dir = SvdCacheDir()}});
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ((*g)->options().svf->mode, SvfMode::kAuto);
  ASSERT_TRUE((*g)->AddExpert("random1", *dir_ / "random1.safetensors").ok());
  ScoreRequest s;
  s.prompt_ids = Chat(**g, kQuestions[2], "").prompt_ids;
  s.completions = {(*g)->tokenizer().Encode("84", false), (*g)->tokenizer().Encode("It is 84.", false)};
  s.adapter = "random1";
  auto scored = (*g)->Score(s);
  ASSERT_TRUE(scored.ok()) << scored.status();
  EXPECT_EQ((*g)->svf_stats().compositions, 0) << "a one-pass Score composed W'";
  auto reference = merged_->Score(s);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (size_t i = 0; i < s.completions.size(); ++i) {
    EXPECT_NEAR((*scored)[i].logprob, (*reference)[i].logprob, 1e-3) << "completion " << i;
    EXPECT_EQ((*scored)[i].tokens, (*reference)[i].tokens);
  }
  Run(**g, {Chat(**g, kQuestions[2], "random1", 4)});
  EXPECT_EQ((*g)->svf_stats().compositions, 1) << "a decode batch of one expert merges it";
  auto again = (*g)->Score(s);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*g)->svf_stats().compositions, 1) << "its W' is at hand now: reused, not composed again";
  EXPECT_NEAR((*again)[0].logprob, (*reference)[0].logprob, 1e-3);
}

// Adapter operations interleave with decoding. The scheduler steps back to back under the
// model lock; an AddMixture arriving meanwhile must get the lock between two steps, not when
// the batch has finished (a worker's new requests resolve their adapters this way), and
// looking up adapter names must not wait for the model at all.
TEST_F(SvfGeneratorTest, AdapterOperationsDoNotWaitForTheRunningBatchToFinish) {
  constexpr int kTokens = 160;
  std::atomic<int> steps{0}, finished{0};
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r = Chat(*factored_, kQuestions[i], "random" + std::to_string(i), kTokens);
    r.ignore_eos = true;
    StreamCallbacks callbacks;
    if (i == 0) {
      callbacks.on_tokens = [&](std::string_view, std::span<const int32_t> t, std::span<const float>) {
        steps += static_cast<int>(t.size());
      };
    }
    callbacks.on_done = [&](absl::StatusOr<GenerationResult>) { ++finished; };
    auto h = factored_->Submit(std::move(r), std::move(callbacks));
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(*h);
  }
  while (steps < 8) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  const auto start = std::chrono::steady_clock::now();
  auto names = factored_->AdapterNames();
  EXPECT_THAT(names, ::testing::Contains("random3"));
  ASSERT_TRUE(factored_->AddMixture("while-decoding", {"random1", "random2"}, {0.3, 0.7}).ok());
  const double waited_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int steps_meanwhile = steps.load();
  EXPECT_EQ(finished.load(), 0) << "AddMixture waited " << waited_s << " s, until the batch had finished";
  EXPECT_LT(steps_meanwhile, kTokens / 2) << "AddMixture waited " << waited_s << " s";

  while (finished < 4) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(factored_->RemoveAdapter("while-decoding").ok());
}

// Cached prompt beginnings belong to the adapter they were computed with: another adapter
// never reuses them, and replacing an expert under the same name drops them.
TEST_F(SvfGeneratorTest, PrefixCacheIsKeptPerAdapterAndDroppedWhenTheExpertIsReplaced) {
  auto made = Generator::Create(
      {.model = t2::testing::DefaultModelPath(),
       .device = t2::model::DeviceSpec::Cpu(),
       .prefix_cache_bytes = int64_t{64} << 20,
       .svf = SvfOptions{.cache_dir = SvdCacheDir(), .mode = SvfMode::kFactored}});
  ASSERT_TRUE(made.ok()) << made.status();
  Generator& g = **made;
  ASSERT_TRUE(g.AddExpert("e", *dir_ / "random0.safetensors").ok());
  auto request = [&](const std::string& question, const std::string& adapter) {
    GenerationRequest r = Chat(g, question, adapter, 8);
    const std::vector<int32_t> system = g.tokenizer().Encode(
        "<|im_start|>system\nYou are a careful assistant. Answer in one short sentence and say nothing "
        "else.<|im_end|>\n",
        false);
    r.prompt_ids.insert(r.prompt_ids.begin(), system.begin(), system.end());
    return r;
  };
  auto expect_same = [&](const GenerationRequest& cached, const std::string& reference_adapter) {
    GenerationRequest reference = cached;
    reference.adapter = reference_adapter;
    auto want = Run(*factored_, {reference});
    auto got = Run(g, {cached});
    EXPECT_EQ(got[0].token_ids, want[0].token_ids) << reference_adapter;
  };
  Run(g, {request(kQuestions[0], "e")});
  EXPECT_EQ(g.scheduler_stats().prefix_cache_entries, 1);
  Run(g, {request(kQuestions[1], "")});
  EXPECT_EQ(g.scheduler_stats().prefix_hits, 0) << "the base model reused an expert's keys and values";
  expect_same(request(kQuestions[2], "e"), "random0");
  EXPECT_EQ(g.scheduler_stats().prefix_hits, 1);
  EXPECT_EQ(g.scheduler_stats().prefix_cache_entries, 3);

  ASSERT_TRUE(g.AddExpert("e", *dir_ / "random1.safetensors").ok());
  EXPECT_EQ(g.scheduler_stats().prefix_cache_entries, 1) << "only the base model's prompt is left";
  expect_same(request(kQuestions[3], "e"), "random1");
  EXPECT_EQ(g.scheduler_stats().prefix_hits, 1) << "a replaced expert's prompts were reused";
}

TEST_F(SvfGeneratorTest, CallerErrorsNameTheAdapter) {
  const std::vector<GenerationRequest> requests = {Chat(*factored_, kQuestions[0], ""),
                                                   Chat(*factored_, kQuestions[0], "nope")};
  auto unknown = factored_->Generate(requests);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("request 1"));
  EXPECT_THAT(unknown.status().message(), HasSubstr("adapter 'nope' is not loaded"));

  auto missing = factored_->AddExpert("x", *dir_ / "does_not_exist.safetensors");
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.message(), HasSubstr("does_not_exist.safetensors"));

  auto mixture = factored_->AddMixture("m", {"random0", "ghost"}, {0.5, 0.5});
  EXPECT_EQ(mixture.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(mixture.message(), HasSubstr("expert[1] 'ghost'"));
  EXPECT_FALSE(factored_->AddMixture("m", {"random0", "random1"}, {0.5}).ok()) << "alpha of the wrong length";
  EXPECT_FALSE(factored_->AddMixture("m", {"random0", "random1"}, {-1.0, 2.0}).ok()) << "negative alpha";

  EXPECT_EQ(factored_->RemoveAdapter("ghost").code(), absl::StatusCode::kNotFound);
  // Nothing above registered anything.
  EXPECT_EQ(factored_->AdapterNames(),
            (std::vector<std::string>{"constant", "random0", "random1", "random2", "random3"}));
}

TEST(SvfGeneratorOptions, BadOptionsAndNoSvf) {
  // Targets and mode are enums: only what a type cannot rule out is left to Validate.
  GeneratorOptions o{.model = "m.gguf"};
  o.svf = SvfOptions{.merged_cache_bytes = -1};
  EXPECT_THAT(o.Validate().message(), HasSubstr("svf.merged_cache_bytes"));
}

}  // namespace
}  // namespace t2::engine
