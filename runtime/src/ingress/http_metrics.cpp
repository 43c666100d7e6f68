#include "ingress/http_metrics.hpp"

#include <cstdio>

#include "cadre/log/log.hpp"

namespace cadre::runtime {

void http_metrics::observe(const std::string& route,
                           const std::string& method, int status,
                           double seconds) {
  std::lock_guard<std::mutex> guard{mtx_};
  ++requests_[{route, method, status}];
  auto& h = latency_[{route, method}];
  for (size_t i = 0; i < bounds.size(); ++i)
    if (seconds <= bounds[i])
      ++h.buckets[i];
  ++h.count;
  h.sum += seconds;
}

std::string http_metrics::prometheus() const {
  std::string out;
  auto num = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", x);
    return std::string{buf};
  };
  std::lock_guard<std::mutex> guard{mtx_};
  out += "# HELP cadre_http_requests_total HTTP requests by route, method "
         "and status\n# TYPE cadre_http_requests_total counter\n";
  for (auto& [key, n] : requests_) {
    auto& [route, method, status] = key;
    out += "cadre_http_requests_total{route=\"" + route + "\",method=\""
           + method + "\",status=\"" + std::to_string(status) + "\"} "
           + std::to_string(n) + "\n";
  }
  out += "# HELP cadre_http_request_duration_seconds Time from the request "
         "line to the last byte of the response\n"
         "# TYPE cadre_http_request_duration_seconds histogram\n";
  for (auto& [key, h] : latency_) {
    auto labels = "route=\"" + key.first + "\",method=\"" + key.second + "\"";
    for (size_t i = 0; i < bounds.size(); ++i)
      out += "cadre_http_request_duration_seconds_bucket{" + labels
             + ",le=\"" + num(bounds[i]) + "\"} "
             + std::to_string(h.buckets[i]) + "\n";
    out += "cadre_http_request_duration_seconds_bucket{" + labels
           + ",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
    out += "cadre_http_request_duration_seconds_sum{" + labels + "} "
           + num(h.sum) + "\n";
    out += "cadre_http_request_duration_seconds_count{" + labels + "} "
           + std::to_string(h.count) + "\n";
  }
  out += "# HELP cadre_sse_cut_off_total Event streams ended because their "
         "client read too slowly\n# TYPE cadre_sse_cut_off_total counter\n"
         "cadre_sse_cut_off_total "
         + std::to_string(cut_off_->load()) + "\n";
  return out;
}

void log_request(const std::string& id, const std::string& method,
                 const std::string& path, const std::string& route,
                 int status, double seconds, const std::string& client,
                 const std::string& principal) {
  // Never the query string: it may carry a token a client put there.
  auto bare = path.substr(0, path.find('?'));
  auto lvl = status >= 500 ? log::level::warn : log::level::info;
  if (!log::enabled(lvl))
    return;
  // `token` is the token's configured name, never its text.
  log::write(lvl, "http request",
             {{"actor", "http"},
              {"request_id", id},
              {"method", method},
              {"path", bare},
              {"route", route},
              {"status", status},
              {"duration_us", static_cast<int64_t>(seconds * 1e6)},
              {"client", client},
              {"token", principal.empty() ? "-" : principal}});
}

} // namespace cadre::runtime
