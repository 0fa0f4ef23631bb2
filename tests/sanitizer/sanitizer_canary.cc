// Deliberate bugs, one per argument, so the sanitizer build proves it catches what it is for,
// and one case that is not a bug and must stay quiet. Linked against libtorch like the real
// tests, so the runtime options that the real tests run under (CMakeLists.txt:
// T2_SANITIZER_ENV) are the ones shown to report and fail here.
#include <ATen/ATen.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <thread>
#include <vector>

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

// The shape of a detached thread still ending when the process exits: OpenMP's pool threads
// do this when the thread that owned the pool (a generator's scheduler) has just been joined.
// Between ASan's farewell to the thread (the last of its thread-specific destructors) and
// glibc's freeing of the thread's second block of thread-specific values (keys 32 and up),
// nothing LeakSanitizer scans points at that block. Here the thread lingers in exactly that
// gap while main returns, so without the suppression in cmake/sanitizers/lsan.supp every run
// would report the block as a direct leak from pthread_setspecific.
std::atomic<bool> g_in_gap{false};
pthread_key_t g_key;
int g_rounds_left = 4;  // glibc runs the destructors up to 4 rounds (PTHREAD_DESTRUCTOR_ITERATIONS)

void LingerInTheGap(void* value) {
  if (--g_rounds_left > 0) {
    pthread_setspecific(g_key, value);  // once more next round, after ASan's own (a lower key)
    return;
  }
  g_in_gap = true;
  std::this_thread::sleep_for(std::chrono::seconds(2));
}

int ThreadEndingAtExit() {
  do {
    if (pthread_key_create(&g_key, LingerInTheGap) != 0) return 1;
  } while (g_key < 32);  // keys from 32 up live in a block glibc allocates per thread
  std::thread([] { pthread_setspecific(g_key, &g_key); }).detach();
  while (!g_in_gap) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return 0;
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
  else if (what == "thread-ending-at-exit")
    r = ThreadEndingAtExit();
  else {
    std::fprintf(stderr,
                 "usage: sanitizer_canary "
                 "clean|thread-ending-at-exit|heap-buffer-overflow|signed-integer-overflow|leak|"
                 "heap-use-after-free\n");
    return 2;
  }
  std::printf("canary %s finished with %d\n", argv[1], r);
  return 0;
}
