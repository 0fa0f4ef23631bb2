// Time to decompose a model's SVF target matrices (the thin SVD of each, in float32), per
// target set, with no cache: what the first start with an expert costs when nothing is cached.
//   svd_bench [model|default] [cpu|cuda[:N]] [threads]
// Prints a markdown table on stdout.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/str_format.h"
#include "float32_model_args.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/targets.h"

int main(int argc, char** argv) {
  auto loaded = t2::bench::LoadFloat32Model(argc, argv);
  if (const int* exit_code = std::get_if<int>(&loaded)) return *exit_code;
  const std::unique_ptr<t2::model::LlamaModel>& model =
      std::get<t2::bench::Float32Model>(loaded).model;
  std::cout << absl::StrFormat("%s on %s, %d threads\n\n", model->config().name,
                               model->device_name(), at::get_num_threads())
            << "| targets | matrices | total r | seconds | GB of factors |\n"
            << "|---------|----------|---------|---------|---------------|\n";
  for (auto targets :
       {t2::svf::TargetSet::kMlp, t2::svf::TargetSet::kAttn, t2::svf::TargetSet::kAll}) {
    const auto start = std::chrono::steady_clock::now();
    auto d = t2::svf::Decomposition::Build(*model, {.targets = targets});
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!d.ok()) {
      std::cerr << d.status() << "\n";
      return 1;
    }
    int64_t rank = 0;
    for (const auto& name : d->names()) rank += d->Find(name)->rank();
    std::cout << absl::StrFormat("| %-7s | %8d | %7d | %7.2f | %13.3f |\n",
                                 std::string(t2::svf::TargetSetName(targets)), d->names().size(),
                                 rank, s, d->bytes() / 1e9);
  }
  return 0;
}
