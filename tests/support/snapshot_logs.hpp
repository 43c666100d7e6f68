#pragma once

// The snapshot logs a machine's steps brought (step::snapshots), kept in
// memory and read back as a store reads them, for tests without a store.

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "cadre/messages/event.hpp"
#include "cadre/workflow/replay.hpp"

namespace cadre::test {

struct snapshot_logs {
  std::map<std::string, std::vector<event>> logs;

  explicit snapshot_logs(const std::vector<event>& events) {
    for (const auto& ev : events)
      logs[ev.execution_id].push_back(ev);
  }

  /// Reads them as workflow::restore_snapshot does; an unknown log is empty.
  workflow::range_reader reader() const {
    return [this](const std::string& name, uint64_t from,
                  uint64_t count) -> expected<std::vector<event>> {
      auto i = logs.find(name);
      if (i == logs.end())
        return std::vector<event>{};
      const auto& l = i->second;
      auto first = std::min<uint64_t>(from - 1, l.size());
      auto last = std::min<uint64_t>(first + count, l.size());
      return std::vector<event>(l.begin() + static_cast<long>(first),
                                l.begin() + static_cast<long>(last));
    };
  }
};

} // namespace cadre::test
