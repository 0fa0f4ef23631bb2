// The decode linear kernel (t2::model::SmallBatchLinear) against LibTorch's at::linear (MKL)
// for the default model's matrix shapes, 1..64 rows. Prints a table: milliseconds per call
// (best of repeats) and the effective weight-streaming bandwidth.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "t2/model/cpu_linear.h"

namespace {

template <typename F>
double BestMs(F&& f, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(
        best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : at::get_num_threads();
  at::set_num_threads(threads);
  struct Shape {
    const char* name;
    int64_t n, k;
  } shapes[] = {{"qkv 960x576", 960, 576},
                {"o 576x576", 576, 576},
                {"gate_up 3072x576", 3072, 576},
                {"down 576x1536", 576, 1536},
                {"lm_head 49152x576", 49152, 576}};
  std::printf(
      "threads: %d, t2::model::Linear uses the kernel on this CPU: %s\n| %-18s | %4s | %10s | %10s "
      "| %6s | %12s |\n",
      threads, t2::model::CpuPrefersSmallLinearKernel() ? "yes" : "no (at::linear)", "matrix",
      "rows", "t2 ms", "at::linear", "ratio", "t2 GB/s");
  std::printf("|--------------------|------|------------|------------|--------|--------------|\n");
  for (const auto& s : shapes) {
    auto w = at::randn({s.n, s.k});
    for (int64_t m : {1, 2, 4, 8, 16, 32, 64}) {
      auto x = at::randn({m, s.k});
      int reps = s.n > 10000 ? 10 : 50;
      double ours = BestMs([&] { t2::model::SmallBatchLinear(x, w, {}); }, reps);
      double mkl = BestMs([&] { at::linear(x, w); }, reps);
      double diff =
          (t2::model::SmallBatchLinear(x, w, {}) - at::linear(x, w)).abs().max().item<double>();
      if (diff > 1e-3) std::printf("MISMATCH %g\n", diff);
      std::printf("| %-18s | %4ld | %10.3f | %10.3f | %5.2fx | %12.1f |\n", s.name, m, ours, mkl,
                  mkl / ours, s.n * s.k * 4 / ours / 1e6);
    }
  }
  return 0;
}
