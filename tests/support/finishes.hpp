#pragma once

// For tests of inputs that once hung: run the work on a thread of its own
// and wait far longer than it needs, so a hang fails the test instead of
// blocking the suite (no timing assertion: only completion is checked).

#include <chrono>
#include <future>
#include <memory>
#include <thread>

namespace cadre::test {

/// Runs `f` on a detached thread; true when it finished within `limit`.
/// A thread that did not is left behind (the test has failed).
template <class F>
bool finishes(F f, std::chrono::seconds limit = std::chrono::seconds{120}) {
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  std::thread{[f, done] {
    f();
    done->set_value();
  }}.detach();
  return fut.wait_for(limit) == std::future_status::ready;
}

} // namespace cadre::test
