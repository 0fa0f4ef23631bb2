#include "t2/common/fault_point.h"

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>

namespace t2 {
namespace {

std::atomic<int> armed{0};  // faults left to throw, at `armed_point`
std::mutex mu;
std::string armed_point;

}  // namespace

void ArmFault(std::string_view point, int times) {
  std::lock_guard<std::mutex> lock(mu);
  armed_point = std::string(point);
  armed.store(times, std::memory_order_relaxed);
}

void FaultPoint(std::string_view point) {
  if (armed.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard<std::mutex> lock(mu);
  if (armed.load(std::memory_order_relaxed) == 0 || point != armed_point) return;
  armed.fetch_sub(1, std::memory_order_relaxed);
  throw std::runtime_error("injected fault at " + std::string(point));
}

}  // namespace t2
