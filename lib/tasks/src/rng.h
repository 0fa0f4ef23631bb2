// Deterministic choices for the task generators: mt19937_64 (fully specified by the C++
// standard) and modulo arithmetic written out, so that the same seed gives the same examples
// with any standard library (std::uniform_int_distribution's algorithm is unspecified). With
// any compiler too, as long as no call takes two draws as arguments: the order in which a
// call's arguments are evaluated is unspecified (tasks_test pins every dataset's hash).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace t2::tasks {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  // Uniform in [lo, hi] (the tiny modulo bias does not matter here).
  int64_t Int(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(engine_() % static_cast<uint64_t>(hi - lo + 1)); }
  template <typename T>
  const T& Pick(std::span<const T> items) { return items[static_cast<size_t>(Int(0, static_cast<int64_t>(items.size()) - 1))]; }
  template <typename T>
  const T& Pick(const std::vector<T>& items) { return Pick(std::span<const T>(items)); }
  template <typename T>
  void Shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[static_cast<size_t>(Int(0, static_cast<int64_t>(i) - 1))]);
  }
  // `k` distinct items of `items`, in random order.
  template <typename T>
  std::vector<T> Sample(const std::vector<T>& items, size_t k) {
    std::vector<T> copy = items;
    Shuffle(copy);
    copy.resize(k);
    return copy;
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace t2::tasks
