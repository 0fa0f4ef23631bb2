// Deliberate bugs, one per argument, so the sanitizer build proves it catches what it is for.
// Linked against libtorch like the real tests, so the runtime options that the real tests
// run under (CMakeLists.txt: T2_SANITIZER_ENV) are the ones shown to report and fail here.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>

namespace {

// volatile keeps the compiler from proving the bugs at compile time and folding them away.
volatile int g_index = 4;
volatile int g_big = std::numeric_limits<int>::max();

int HeapOverflow() {
  std::vector<int> v(4, 1);
  return v.data()[g_index];  // one past the end
}

int SignedOverflow() { return g_big + 1; }

int Leak() {
  auto* leaked = new int[16];
  leaked[0] = 1;
  leaked = nullptr;  // the only pointer is gone before exit
  return 0;
}

int UseAfterFree() {
  auto* p = new int(7);
  delete p;
  return *p;
}

}  // namespace

int main(int argc, char** argv) {
  // Touch libtorch so its (uninstrumented) initialisation is part of every run.
  const auto ones = at::ones({4});
  if (ones.sum().item<float>() != 4.0f) return 3;
  const std::string_view what = argc > 1 ? argv[1] : "";
  int r = 0;
  if (what == "heap-buffer-overflow") r = HeapOverflow();
  else if (what == "signed-integer-overflow") r = SignedOverflow();
  else if (what == "leak") r = Leak();
  else if (what == "heap-use-after-free") r = UseAfterFree();
  else if (what == "clean") r = 0;
  else {
    std::fprintf(stderr, "usage: sanitizer_canary clean|heap-buffer-overflow|signed-integer-overflow|leak|heap-use-after-free\n");
    return 2;
  }
  std::printf("canary %s finished with %d\n", argv[1], r);
  return 0;
}
