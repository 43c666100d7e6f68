#pragma once

// The log of a map over `n` echo items, every item at once, run to its end
// (the shape of the timetravel bench's fanout): for tests of what replay
// costs on a big map.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/event.hpp"
#include "cadre/workflow/machine.hpp"

namespace cadre::test {

inline std::vector<event> big_map_log(size_t n, const std::string& id = "fan") {
  json doc{{"name", "fan"},
           {"tasks", json::array({json{{"id", "map"}, {"kind", "map"},
                                       {"items", "input.items"},
                                       {"concurrency", 0}, {"tool", "echo"},
                                       {"input", "{{ item }}"}}})}};
  json items = json::array();
  for (size_t i = 0; i < n; ++i)
    items.push_back(i);
  workflow::machine m{id};
  auto s = m.submit(doc, json{{"items", items}}, "k", 1000);
  EXPECT_TRUE(s) << describe(s.error());
  std::vector<event> log = s->events;
  for (size_t i = 0; i < n; ++i)
    for (auto& ev : m.succeeded("map[" + std::to_string(i) + "]", 1, json(i),
                                5, 2000 + static_cast<int64_t>(i))
                      .events)
      log.push_back(std::move(ev));
  EXPECT_TRUE(m.finished());
  return log;
}

} // namespace cadre::test
