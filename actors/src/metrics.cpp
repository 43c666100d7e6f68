#include "cadre/actors/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace cadre::actors {

namespace {

// Label values escape backslash, double quote and newline (exposition
// format 0.0.4).
void append_escaped(std::string& out, const std::string& s) {
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

void append_number(std::string& out, double x) {
  char buf[32];
  // Integral counts print without a fraction; costs keep their cents.
  if (std::floor(x) == x && std::fabs(x) < 1e15)
    std::snprintf(buf, sizeof(buf), "%.0f", x);
  else {
    // The shortest text that reads back as the same double.
    for (int digits = 15; digits <= 17; ++digits) {
      std::snprintf(buf, sizeof(buf), "%.*g", digits, x);
      if (std::strtod(buf, nullptr) == x)
        break;
    }
  }
  out += buf;
}

} // namespace

void metric_registry::declare(const std::string& name, std::string help) {
  std::lock_guard<std::mutex> guard{mtx_};
  families_[name].help = std::move(help);
}

void metric_registry::add(const std::string& name, const metric_labels& labels,
                  double delta) {
  if (!(delta >= 0)) // counters only go up; NaN is refused too
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  families_[name].series[labels] += delta;
}

double metric_registry::value(const std::string& name,
                      const metric_labels& labels) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto f = families_.find(name);
  if (f == families_.end())
    return 0;
  auto s = f->second.series.find(labels);
  return s == f->second.series.end() ? 0 : s->second;
}

std::string metric_registry::prometheus() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::string out;
  for (const auto& [name, fam] : families_) {
    if (!fam.help.empty()) {
      out += "# HELP " + name + " ";
      for (char c : fam.help)
        out += c == '\n' ? std::string{"\\n"} : std::string(1, c);
      out += '\n';
    }
    out += "# TYPE " + name + " counter\n";
    for (const auto& [labels, v] : fam.series) {
      out += name;
      if (!labels.empty()) {
        out += '{';
        for (size_t i = 0; i < labels.size(); ++i) {
          if (i > 0)
            out += ',';
          out += labels[i].first + "=\"";
          append_escaped(out, labels[i].second);
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      append_number(out, v);
      out += '\n';
    }
  }
  return out;
}

nlohmann::json metric_registry::to_json() const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto out = nlohmann::json::object();
  for (const auto& [name, fam] : families_) {
    auto xs = nlohmann::json::array();
    for (const auto& [labels, v] : fam.series) {
      auto ls = nlohmann::json::object();
      for (const auto& [k, x] : labels)
        ls[k] = x;
      xs.push_back({{"labels", std::move(ls)}, {"value", v}});
    }
    out[name] = std::move(xs);
  }
  return out;
}

} // namespace cadre::actors
