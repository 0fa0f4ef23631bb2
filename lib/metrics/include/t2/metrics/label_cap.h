// A label whose values come from clients (adapter names, categories) can create a new series
// per request and exhaust Prometheus: LabelCap lets the first `cap` distinct values through
// and maps every later one to "other".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace t2::metrics {

inline constexpr std::string_view kOtherLabel = "other";

class LabelCap {
 public:
  explicit LabelCap(size_t cap) : cap_(cap) {}

  // `value` itself when it is already admitted or there is room; else "other".
  std::string Admit(std::string_view value);

 private:
  const size_t cap_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> admitted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace t2::metrics
