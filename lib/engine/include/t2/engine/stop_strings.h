// Detects stop strings in streamed text without ever emitting part of one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace t2::engine {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Appends `text`. Returns the part now safe to emit: everything before a complete stop
  // string (then stopped() is true and later calls return nothing), or everything except a
  // tail that could still become one.
  std::string Feed(std::string_view text);
  // The held-back tail once generation ends for another reason.
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace t2::engine
