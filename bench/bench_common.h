// What the service benchmarks (stack_bench, load_bench) share: their chat questions and
// how they summarise timings.
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace t2::bench {

using Clock = std::chrono::steady_clock;

inline double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Nearest rank; 0 for no samples.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Short chat questions of the kinds the first pass tells apart (code, math, reasoning, other).
inline const std::vector<std::string> kQuestions = {
    "What is 12 times 12?",
    "Write a Python function that reverses a string.",
    "Why is the sky blue?",
    "List three prime numbers.",
    "If all cats are animals and Tom is a cat, what is Tom?",
    "Explain recursion in one paragraph.",
    "What is the capital of Japan?",
    "Sort these: 5, 2, 9, 1."};

}  // namespace t2::bench
