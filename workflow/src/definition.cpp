#include "cadre/workflow/definition.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "document.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::workflow {

int definition::index_of(const std::string& id) const {
  for (size_t i = 0; i < tasks.size(); ++i)
    if (tasks[i].id == id)
      return static_cast<int>(i);
  return -1;
}

std::string diagnostic::to_string() const {
  std::string out = file;
  if (where.line > 0) {
    if (!out.empty())
      out += ':';
    out += std::to_string(where.line);
    if (where.column > 0)
      out += ':' + std::to_string(where.column);
  }
  if (!pointer.empty()) {
    if (!out.empty())
      out += ": ";
    out += pointer;
  }
  if (!out.empty())
    out += ": ";
  out += message;
  return out;
}

namespace detail {

std::string child_pointer(const std::string& pointer,
                          const std::string& token) {
  return yaml::child_pointer(pointer, token);
}

namespace {

/// Optimal string alignment distance (a swap of neighbours costs 1), on
/// three rows instead of a matrix: a mistyped key may be 64 KB long.
size_t edit_distance(const std::string& a, const std::string& b) {
  auto lower = [](char c) {
    return std::tolower(static_cast<unsigned char>(c));
  };
  // before2, before, row: the rows of a's prefixes i-2, i-1 and i.
  std::vector<size_t> before2(b.size() + 1), before(b.size() + 1),
    row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    before[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      row[j] = std::min({before[j] + 1, row[j - 1] + 1,
                         before[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        row[j] = std::min(row[j], before2[j - 2] + 1);
    }
    std::swap(before2, before);
    std::swap(before, row);
  }
  return before[b.size()];
}

} // namespace

std::string closest(const std::string& word,
                    const std::vector<std::string>& candidates) {
  size_t allowed = std::clamp<size_t>((word.size() + 1) / 2, 1, 3);
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    // The distance is at least the difference in length.
    auto gap = word.size() > c.size() ? word.size() - c.size()
                                      : c.size() - word.size();
    if (gap > allowed)
      continue;
    auto d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best_distance <= allowed ? best : std::string{};
}

} // namespace detail

const char* kind_name(task_kind k) {
  switch (k) {
    case task_kind::tool:
      return "tool";
    case task_kind::human:
      return "human";
    case task_kind::map:
      return "map";
    case task_kind::workflow:
      return "workflow";
    case task_kind::agent:
      return "agent";
  }
  return "tool";
}

} // namespace cadre::workflow
