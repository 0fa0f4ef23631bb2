// Seconds on the steady clock since `start`: the phase and step times the trainer reports.
#pragma once

#include <chrono>

namespace t2::train {

inline double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace t2::train
