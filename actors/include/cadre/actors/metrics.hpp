#pragma once

// A node's counters: what its actors count (LLM tokens and cost, agent turns,
// tool calls by agents), rendered in Prometheus' text format for a scrape or
// a textfile collector, or as JSON for programs (docs/metrics.md).

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cadre::actors {

/// Label name -> value of one series, e.g. {{"agent", "extractor"}}.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

/// Monotonic counters by name and labels. Adding is cheap (one uncontended
/// lock, no allocation for a series seen before) and safe from any thread;
/// actors add as they go, readers take a consistent snapshot.
class metric_registry {
public:
  /// Declares counter `name` with its help text (shown as `# HELP`).
  /// Counting into an undeclared name declares it without help.
  void declare(const std::string& name, std::string help);

  /// Adds `delta` (>= 0) to the series `name{labels}`.
  void add(const std::string& name, const metric_labels& labels,
           double delta = 1.0);

  /// The value of a series; 0 when it was never counted.
  double value(const std::string& name, const metric_labels& labels) const;

  /// Prometheus text exposition format 0.0.4: `# HELP`, `# TYPE ... counter`
  /// and one line per series, names and series in sorted order.
  std::string prometheus() const;

  /// {"name": [{"labels": {...}, "value": x}, ...], ...}
  nlohmann::json to_json() const;

private:
  struct family {
    std::string help;
    std::map<metric_labels, double> series;
  };
  mutable std::mutex mtx_;
  std::map<std::string, family> families_;
};

} // namespace cadre::actors
