#include "t2/metrics/label_cap.h"

namespace t2::metrics {

std::string LabelCap::Admit(std::string_view value) {
  std::string key(value);
  absl::MutexLock lock(&mu_);
  if (admitted_.contains(key)) return key;
  if (admitted_.size() >= cap_ || key == kOtherLabel) return std::string(kOtherLabel);
  admitted_.insert(key);
  return key;
}

}  // namespace t2::metrics
