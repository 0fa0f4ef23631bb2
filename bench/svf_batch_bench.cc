// Decode throughput of a batch of 8 requests on the default model with SVF experts (MLP
// targets), three ways, in one run:
//   one expert    — all 8 requests use the same expert: merged once into the weights;
//   8 experts, factored — each request its own expert, one batch, per-row z (no rebuild);
//   8 experts, merged   — each request its own expert, regrouped: 8 sub-batches, W' each.
// decode tok/s = 8 × (N − 1) / (time(N tokens) − time(1 token)), best of repeats, as in
// generate_bench. Random experts are written to a temporary folder; the SVD cache goes there
// too (the first run computes it).
//
//   svf_batch_bench [decode_tokens=32] [threads=0]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "t2/common/env.h"
#include "t2/engine/generator.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"

namespace {

using t2::engine::GenerationRequest;
using t2::engine::Generator;

[[noreturn]] void Die(const absl::Status& s) {
  std::cerr << s << "\n";
  std::exit(1);
}

double TimeGenerate(Generator& g, const std::vector<GenerationRequest>& requests) {
  auto start = std::chrono::steady_clock::now();
  auto result = g.Generate(requests);
  if (!result.ok()) Die(result.status());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<GenerationRequest> Batch(const std::vector<int32_t>& prompt, const std::vector<std::string>& adapters,
                                     int new_tokens) {
  std::vector<GenerationRequest> batch;
  for (const auto& a : adapters) {
    GenerationRequest r;
    r.prompt_ids = prompt;
    r.max_new_tokens = new_tokens;
    r.ignore_eos = true;
    r.adapter = a;
    batch.push_back(r);
  }
  return batch;
}

double DecodeTokPerS(Generator& g, const std::vector<int32_t>& prompt, const std::vector<std::string>& adapters,
                     int tokens) {
  double one = 1e30, full = 1e30;
  for (int rep = 0; rep < 2; ++rep) {
    one = std::min(one, TimeGenerate(g, Batch(prompt, adapters, 1)));
    full = std::min(full, TimeGenerate(g, Batch(prompt, adapters, tokens)));
  }
  return adapters.size() * (tokens - 1) / (full - one);
}

}  // namespace

int main(int argc, char** argv) {
  const int tokens = argc > 1 ? std::atoi(argv[1]) : 32;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  auto path = t2::ResolveModelPath("default");
  if (!path.ok()) Die(path.status());
  const auto dir = std::filesystem::temp_directory_path() / "t2_svf_batch_bench";
  std::filesystem::create_directories(dir);

  // Experts against the model's decomposition.
  {
    auto model = t2::model::LlamaModel::Load(*path, {.device = t2::model::DeviceSpec::Cpu()});
    if (!model.ok()) Die(model.status());
    auto d = t2::svf::Decomposition::Build(**model, {.targets = t2::svf::TargetSet::kMlp, .cache_dir = dir});
    if (!d.ok()) Die(d.status());
    for (int k = 0; k < 8; ++k) {
      auto e = t2::svf::ConstantExpert(*d, 1.0f, "SmolLM2-135M-Instruct");
      auto gen = at::make_generator<at::CPUGeneratorImpl>(k);
      for (auto& [name, z] : e.z) z = at::rand(z.sizes(), gen) * 0.4 + 0.8;
      if (auto s = t2::svf::WriteExpert(e, dir / absl::StrFormat("e%d.safetensors", k)); !s.ok()) Die(s);
    }
  }

  std::vector<std::string> one(8, "e0"), eight;
  for (int k = 0; k < 8; ++k) eight.push_back(absl::StrFormat("e%d", k));
  std::vector<std::pair<std::string, double>> rows;
  std::vector<int32_t> prompt;
  for (const t2::engine::SvfMode mode :
       {t2::engine::SvfMode::kAuto, t2::engine::SvfMode::kMerged}) {
    auto g = Generator::Create(
        {.model = *path,
         .device = t2::model::DeviceSpec::Cpu(),
         .cpu_threads = threads,
         .svf = t2::engine::SvfOptions{
             .targets = t2::svf::TargetSet::kMlp, .cache_dir = dir, .mode = mode}});
    if (!g.ok()) Die(g.status());
    for (int k = 0; k < 8; ++k) {
      if (auto s = (*g)->AddExpert(eight[k], dir / absl::StrFormat("e%d.safetensors", k)); !s.ok()) Die(s);
    }
    if (prompt.empty()) {
      auto ids = (*g)->tokenizer().Encode(
          "The quick brown fox jumps over the lazy dog while the river runs to the sea, and the wind "
          "turns the old mill by the bridge.", false);
      if (ids.size() < 16) Die(absl::InternalError("prompt shorter than 16 tokens"));
      prompt.assign(ids.begin(), ids.begin() + 16);
    }
    TimeGenerate(**g, Batch(prompt, eight, 2));  // warm-up
    if (mode == t2::engine::SvfMode::kAuto) {
      rows.push_back({"base model, no expert", DecodeTokPerS(**g, prompt, std::vector<std::string>(8, ""), tokens)});
      rows.push_back({"one expert (merged once)", DecodeTokPerS(**g, prompt, one, tokens)});
      rows.push_back({"8 experts, factored", DecodeTokPerS(**g, prompt, eight, tokens)});
    } else {
      rows.push_back({"8 experts, merged + regrouped", DecodeTokPerS(**g, prompt, eight, tokens)});
    }
  }
  std::printf("SmolLM2-135M-Instruct, CPU float32, %d threads, batch 8, %d decode tokens, MLP experts\n",
              threads > 0 ? threads : at::get_num_threads(), tokens);
  std::printf("| %-32s | %9s | %16s |\n", "batch", "tok/s", "vs one expert");
  std::printf("|%s|%s|%s|\n", std::string(34, '-').c_str(), std::string(11, '-').c_str(), std::string(18, '-').c_str());
  for (const auto& [label, tps] : rows) {
    std::printf("| %-32s | %9.1f | %15.2fx |\n", label.c_str(), tps, tps / rows[1].second);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
