// Prefill and decode throughput of the engine, measured the same way as
// bench/compare_transformers.py measures transformers so the two can stand side by side:
//   prefill tok/s = prompt tokens / time(generate 1 token)
//   decode tok/s  = batch × (N − 1) / (time(generate N tokens) − time(generate 1 token))
// Prints one JSON object per measurement on stdout.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/strings/str_format.h"
#include "t2/common/env.h"
#include "t2/engine/generator.h"

namespace {

using t2::engine::GenerationRequest;
using t2::engine::Generator;

double TimeGenerate(Generator& g, const std::vector<GenerationRequest>& requests) {
  auto start = std::chrono::steady_clock::now();
  auto result = g.Generate(requests);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!result.ok()) {
    std::cerr << "generate failed: " << result.status() << "\n";
    std::exit(1);
  }
  return s;
}

std::vector<GenerationRequest> Batch(const std::vector<int32_t>& prompt, int batch, int new_tokens) {
  GenerationRequest r;
  r.prompt_ids = prompt;
  r.max_new_tokens = new_tokens;
  r.ignore_eos = true;
  return std::vector<GenerationRequest>(batch, r);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = argc > 1 ? argv[1] : "default";
  int decode_tokens = argc > 2 ? std::atoi(argv[2]) : 64;
  int threads = argc > 3 ? std::atoi(argv[3]) : 0;
  // cpu, cuda, cuda:N: the dtype is the device's default
  auto device = t2::model::DeviceSpec::Parse(argc > 4 ? argv[4] : "cpu");
  if (!device.ok()) {
    std::cerr << "device: " << device.status().message() << "\n";
    return 2;
  }
  auto path = t2::ResolveModelPath(model);
  if (!path.ok()) {
    std::cerr << path.status() << "\n";
    return 1;
  }
  auto gen = Generator::Create(
      {.model = *path, .device = *device, .cpu_threads = threads, .max_batch_size = 64});
  if (!gen.ok()) {
    std::cerr << gen.status() << "\n";
    return 1;
  }
  Generator& g = **gen;
  // Prompts: a fixed English text repeated; its first 512 tokens for prefill, 16 for decode.
  std::string text;
  while (text.size() < 8000) text += "The quick brown fox jumps over the lazy dog while the river runs to the sea. ";
  auto ids = g.tokenizer().Encode(text, false);
  std::vector<int32_t> long_prompt(ids.begin(), ids.begin() + 512);
  std::vector<int32_t> short_prompt(ids.begin(), ids.begin() + 16);

  TimeGenerate(g, Batch(short_prompt, 1, 4));  // warm-up (allocator, thread pool)
  double prefill = 1e30;
  for (int rep = 0; rep < 3; ++rep) prefill = std::min(prefill, TimeGenerate(g, Batch(long_prompt, 1, 1)));
  std::cout << absl::StrFormat(R"({"impl": "t2", "kind": "prefill", "tokens": 512, "seconds": %.4f, "tok_per_s": %.1f})",
                               prefill, 512 / prefill)
            << std::endl;
  for (int batch : {1, 8, 32}) {
    double one = 1e30, full = 1e30;
    for (int rep = 0; rep < 2; ++rep) {
      one = std::min(one, TimeGenerate(g, Batch(short_prompt, batch, 1)));
      full = std::min(full, TimeGenerate(g, Batch(short_prompt, batch, decode_tokens)));
    }
    double tps = batch * (decode_tokens - 1) / (full - one);
    std::cout << absl::StrFormat(R"({"impl": "t2", "kind": "decode", "batch": %d, "tokens": %d, "seconds": %.4f, "tok_per_s": %.1f})",
                                 batch, decode_tokens, full - one, tps)
              << std::endl;
  }
  return 0;
}
