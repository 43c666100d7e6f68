#pragma once

// Counters and latency histograms of the HTTP API, by route pattern (not
// the concrete path, so ids do not multiply the series).

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace cadre::runtime {

class http_metrics {
public:
  /// Upper bounds of the latency buckets, in seconds.
  static constexpr std::array<double, 12> bounds
    = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
       0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

  void observe(const std::string& route, const std::string& method,
               int status, double seconds);

  /// Counts streams cut off; shared, so a stream that outlives the
  /// server (a thread left after the drain) still counts safely.
  std::shared_ptr<std::atomic<uint64_t>> cut_off_counter() const {
    return cut_off_;
  }

  /// cadre_http_requests_total, cadre_http_request_duration_seconds and
  /// cadre_sse_cut_off_total in Prometheus text format.
  std::string prometheus() const;

private:
  struct histogram {
    std::array<uint64_t, bounds.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mtx_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, histogram> latency_;
  std::shared_ptr<std::atomic<uint64_t>> cut_off_
    = std::make_shared<std::atomic<uint64_t>>(0);
};

/// One log line per request: id, method, path, route, status, duration,
/// client address. Never headers or bodies (they may carry secrets).
void log_request(const std::string& id, const std::string& method,
                 const std::string& path, const std::string& route,
                 int status, double seconds, const std::string& client,
                 const std::string& principal);

} // namespace cadre::runtime
