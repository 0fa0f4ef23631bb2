// Σ′ rebuild (an expert switch in merged form: MergedWeights::Apply writes W' = c·U diag(σ⊙z)Vᵀ
// into every target matrix) against the floor set by this machine's own GEMM rate:
// floor = Σ 2·n·m·r flops / (at::mm GFLOP/s on a square float32 product).
//   rebuild_bench [model|default] [cpu|cuda[:N]] [threads]
// float32 weights. The SVD cache is read from (or written to) the model's folder, as
// `t2 svd` and `t2 expert constant` do. Prints a markdown table on stdout.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "float32_model_args.h"
#include "t2/model/llama.h"
#include "t2/svf/compose.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"
#include "t2/svf/targets.h"

namespace {

using Clock = std::chrono::steady_clock;

void Sync(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

double Ms(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Best of several at::mm runs of a square product: the rate the rebuild's GEMMs could reach.
double GemmGflops(const at::Device& device, int64_t size) {
  const auto options = at::TensorOptions().dtype(at::kFloat).device(device);
  const at::Tensor a = at::randn({size, size}, options), b = at::randn({size, size}, options);
  at::Tensor c = at::empty({size, size}, options);
  double best = 1e30;
  for (int i = 0; i < 12; ++i) {
    Sync(device);
    const auto start = Clock::now();
    at::mm_out(c, a, b);
    Sync(device);
    if (i >= 2) best = std::min(best, Ms(start));  // the first runs warm caches and threads
  }
  return 2.0 * size * size * size / (best * 1e6);
}

t2::svf::Expert RandomExpert(const t2::svf::Decomposition& d) {
  t2::svf::Expert expert = t2::svf::ConstantExpert(d, 1.0f, "bench");
  // The reference's trained experts sit near sigmoid(0.1) ≈ 0.525; any spread will do.
  for (auto& [name, z] : expert.z) z = 0.3 + 0.5 * at::rand(z.sizes());
  return expert;
}

}  // namespace

int main(int argc, char** argv) {
  auto loaded = t2::bench::LoadFloat32Model(argc, argv);
  if (const int* exit_code = std::get_if<int>(&loaded)) return *exit_code;
  const auto& [path, model] = std::get<t2::bench::Float32Model>(loaded);
  const std::filesystem::path cache_dir =
      std::filesystem::is_directory(path) ? path : path.parent_path();
  const at::Device device = model->parameters().begin()->second.device();
  at::manual_seed(0);
  constexpr int64_t kGemmSize = 1024;
  const double gflops = GemmGflops(device, kGemmSize);

  std::cout << absl::StrFormat(
                   "%s on %s (float32), %d threads; at::mm %d³ float32: %.1f GFLOP/s\n\n",
                   model->config().name, model->device_name(), at::get_num_threads(), kGemmSize,
                   gflops)
            << "| targets | matrices |  GFLOP | Apply ms (median) | floor ms | ratio | Write "
               "cached W' ms |\n"
            << "|---------|---------:|-------:|------------------:|---------:|------:|-------------"
               "------:|\n";
  for (auto targets : {t2::svf::TargetSet::kMlp, t2::svf::TargetSet::kAll}) {
    auto d = t2::svf::Decomposition::Build(*model, {.targets = targets, .cache_dir = cache_dir});
    if (!d.ok()) {
      std::cerr << d.status() << "\n";
      return 1;
    }
    double flops = 0;
    for (const auto& name : d->names()) {
      const t2::svf::SvdFactors& f = *d->Find(name);
      flops += 2.0 * f.u.size(0) * f.v.size(0) * f.rank();
    }
    auto merged = t2::svf::MergedWeights::Create(*model, *d);
    if (!merged.ok()) {
      std::cerr << merged.status() << "\n";
      return 1;
    }
    const t2::svf::Expert experts[2] = {RandomExpert(*d), RandomExpert(*d)};
    std::vector<double> apply_ms;
    for (int i = 0; i < 9; ++i) {  // alternate two experts: every run is a real switch
      Sync(device);
      const auto start = Clock::now();
      if (auto s = merged->Apply(experts[i % 2]); !s.ok()) {
        std::cerr << s << "\n";
        return 1;
      }
      Sync(device);
      if (i > 0) apply_ms.push_back(Ms(start));
    }
    auto composed = merged->Compose(experts[0]);
    if (!composed.ok()) {
      std::cerr << composed.status() << "\n";
      return 1;
    }
    std::vector<double> write_ms;
    for (int i = 0; i < 8; ++i) {
      Sync(device);
      const auto start = Clock::now();
      if (auto s = merged->Write(*composed); !s.ok()) {
        std::cerr << s << "\n";
        return 1;
      }
      Sync(device);
      write_ms.push_back(Ms(start));
    }
    merged->RestoreBase();
    const double apply = Median(apply_ms);
    const double floor = flops / (gflops * 1e6);
    std::cout << absl::StrFormat("| %-7s | %8d | %6.2f | %17.1f | %8.1f | %5.2f | %18.1f |\n",
                                 std::string(t2::svf::TargetSetName(targets)), d->names().size(), flops / 1e9,
                                 apply, floor, apply / floor, Median(write_ms));
  }
  return 0;
}
