// When to reopen a long-lived stream (Registry.Watch) that ended: after a short delay that
// doubles while the peer stays down, and is short again once a stream worked. Also says when
// an outage begins, so that callers log it once rather than on every attempt.
#pragma once

#include <algorithm>
#include <chrono>

namespace t2::rpc {

class ReconnectBackoff {
 public:
  ReconnectBackoff(std::chrono::milliseconds first, std::chrono::milliseconds max) : first_(first), max_(max) {}

  struct Wait {
    std::chrono::milliseconds delay;  // before the next attempt
    bool outage_began;                // the first failure since a stream worked: log it
  };
  // A stream ended. `worked`: it delivered a message or stayed open a while, so the peer was up
  // and this is a new outage, not the same one again.
  Wait Ended(bool worked) {
    if (worked) {
      delay_ = first_;
      in_outage_ = false;
    }
    const Wait wait{delay_, !in_outage_};
    in_outage_ = true;
    delay_ = std::min(delay_ * 2, max_);
    return wait;
  }

 private:
  std::chrono::milliseconds first_, max_;
  std::chrono::milliseconds delay_ = first_;
  bool in_outage_ = false;
};

}  // namespace t2::rpc
