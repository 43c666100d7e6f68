#pragma once

// Restart intensity, the one rule for "crashing too often" (OTP's
// intensity/period): supervisors and dynamic_children (the agents' and the
// coordinators') judge their children's crashes with it.

#include <chrono>
#include <cstddef>
#include <deque>

namespace cadre::actors {

/// At most `max` restarts within a sliding `window`. A plain value, owned
/// by one actor (not thread-safe). Every call first forgets restarts older
/// than the window, so a child refused once is allowed again as soon as the
/// window has passed, whether or not it crashes again.
class restart_intensity {
public:
  using time_point = std::chrono::steady_clock::time_point;

  restart_intensity(size_t max, std::chrono::milliseconds window)
    : max_(max), window_(window) {
    // nop
  }

  /// Records a crash at `now`; true when restarting it stays within the
  /// intensity (this crash counted), false when it is one too many.
  bool record(time_point now) {
    prune(now);
    recent_.push_back(now);
    return recent_.size() <= max_;
  }

  /// Whether the restarts within the window at `now` are within the
  /// intensity (a child over it may not run yet).
  bool allows(time_point now) {
    prune(now);
    return recent_.size() <= max_;
  }

  /// Restarts within the window, as of the last call.
  size_t recent() const noexcept {
    return recent_.size();
  }

private:
  void prune(time_point now) {
    while (!recent_.empty() && now - recent_.front() > window_)
      recent_.pop_front();
  }

  size_t max_;
  std::chrono::milliseconds window_;
  std::deque<time_point> recent_;
};

} // namespace cadre::actors
