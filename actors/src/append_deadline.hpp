#pragma once

// What an actor that writes the event store does when an append goes
// unanswered past its deadline (store.append_deadline). Private to actors/.

#include <algorithm>
#include <chrono>
#include <string>

#include <caf/timespan.hpp>

#include "cadre/messages/error.hpp"
#include "cadre/messages/type_ids.hpp"

namespace cadre::actors {

/// The error of an append the store left unanswered for `deadline`: the
/// store is stuck (a stalled disk), not the request wrong. Unavailable, as
/// a dependency that is down: a caller may try again later.
inline caf::error append_unanswered(std::chrono::milliseconds deadline) {
  return make_error(errc::unavailable,
                    "the event store did not answer an append within "
                      + std::to_string(deadline.count())
                      + " ms (store.append_deadline)");
}

/// Sends `self` the timer (timer_atom, append_atom, generation) for the
/// oldest of its `appends` in flight (an in_flight of one_timer.hpp), unless
/// one as early is armed.
template <class Self, class InFlight>
void arm_append_deadline(Self self, InFlight& appends,
                         std::chrono::milliseconds deadline) {
  if (auto t = appends.arm(deadline))
    self->delayed_send(self,
                       std::max(caf::timespan{t->second - self->clock().now()},
                                caf::timespan{0}),
                       timer_atom_v, append_atom_v, t->first);
}

} // namespace cadre::actors
