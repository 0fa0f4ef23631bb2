// In-process fault injection for tests: ArmFault(point, n) makes the next n FaultPoint(point)
// calls throw std::runtime_error, as an allocation failure or a library error deep inside the
// work would. Unarmed, FaultPoint costs one relaxed atomic load. Thread-safe.
#pragma once

#include <string_view>

namespace t2 {

void ArmFault(std::string_view point, int times = 1);
void FaultPoint(std::string_view point);

}  // namespace t2
