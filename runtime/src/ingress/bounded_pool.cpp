#include "ingress/bounded_pool.hpp"

namespace cadre::runtime {

namespace {

// Set on the thread that handles a connection the pool could not take.
thread_local bool overflow_lane = false;

} // namespace

bool on_overflow_lane() {
  return overflow_lane;
}

void set_overflow_lane(bool on) {
  overflow_lane = on;
}

} // namespace cadre::runtime
