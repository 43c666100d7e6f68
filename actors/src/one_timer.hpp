#pragma once

// One timer for the deadlines of an actor (an agent's append in flight and
// idle stop, a coordinator's append in flight, the appends in flight of the
// executions and schedules actors; store.append_deadline bounds an append),
// instead of a CAF timer for each: every CAF timer is a message to CAF's
// clock thread, which wakes for it, and CAF 0.17 does not cancel a
// request's timeout when the answer comes. Pure: the owner computes its
// earliest deadline and sends the timer messages. Private to actors/.

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

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

/// Requests of an actor in flight at once that share one deadline (the
/// executions actor's fork appends, one append per schedule), by ticket,
/// with one timer for them all. They are sent in clock order, so the oldest
/// is the first due.
template <class TimePoint, class T>
class in_flight {
public:
  /// Records a request sent at `sent`; its ticket names its answer.
  uint64_t add(TimePoint sent, T x) {
    requests_.emplace(++last_, std::make_pair(sent, std::move(x)));
    return last_;
  }

  /// The answer to `ticket` came: what was recorded with it, or none when
  /// the request expired first (a late answer, to be ignored).
  std::optional<T> answered(uint64_t ticket) {
    auto i = requests_.find(ticket);
    if (i == requests_.end())
      return std::nullopt;
    auto x = std::move(i->second.second);
    requests_.erase(i);
    return x;
  }

  /// The timer to send for the oldest request's deadline: its generation
  /// and when it is due; none when none is in flight or one as early is
  /// armed (one_timer::arm).
  template <class Duration>
  std::optional<std::pair<uint64_t, TimePoint>> arm(Duration deadline) {
    if (requests_.empty())
      return std::nullopt;
    auto due = requests_.begin()->second.first + deadline;
    if (auto generation = timer_.arm(due))
      return std::make_pair(*generation, due);
    return std::nullopt;
  }

  /// A timer of `generation` fired at `now`: removes the requests older
  /// than `deadline` and returns what was recorded with them, oldest first
  /// (none for a timer replaced by a sooner one). Then arm() again.
  template <class Duration>
  std::vector<T> fired(uint64_t generation, TimePoint now, Duration deadline) {
    std::vector<T> out;
    if (!timer_.fired(generation))
      return out;
    while (!requests_.empty()
           && !(now < requests_.begin()->second.first + deadline)) {
      out.push_back(std::move(requests_.begin()->second.second));
      requests_.erase(requests_.begin());
    }
    return out;
  }

private:
  std::map<uint64_t, std::pair<TimePoint, T>> requests_;
  uint64_t last_ = 0;
  one_timer<TimePoint> timer_;
};

} // namespace cadre::actors
