#pragma once

// One timer for the deadlines of an actor (an agent's append in flight and
// idle stop, a coordinator's append in flight; local_deadline bounds an
// append), instead of a CAF timer for each: every CAF
// timer is a message to CAF's clock thread, which wakes for it, and CAF
// 0.17 does not cancel a request's timeout when the answer comes. Pure:
// the owner computes its earliest deadline and sends the timer messages.
// Private to actors/.

#include <cstdint>
#include <optional>

namespace cadre::actors {

template <class TimePoint>
class one_timer {
public:
  /// The generation of a timer to send for `due`; none when the one armed
  /// is due as early (when it fires, the owner looks again).
  std::optional<uint64_t> arm(TimePoint due) {
    if (armed_ && due_ <= due)
      return std::nullopt;
    armed_ = true;
    due_ = due;
    return ++generation_;
  }

  /// Whether a timer message of `generation` is the one armed (afterwards
  /// none is); false for one armed before a sooner replaced it.
  bool fired(uint64_t generation) {
    if (!armed_ || generation != generation_)
      return false;
    armed_ = false;
    return true;
  }

private:
  bool armed_ = false;
  uint64_t generation_ = 0;
  TimePoint due_{};
};

} // namespace cadre::actors
