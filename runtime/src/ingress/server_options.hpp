#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::runtime {

/// How `cadre serve` serves HTTP: the `server` section of the config
/// (docs/operations.md). Flags override what the file sets.
struct server_options {
  /// Default: "127.0.0.1"
  std::string host = "127.0.0.1";
  /// Default: 8700 (0: any free port, printed at start)
  int port = 8700;
  /// Serve on a non-loopback address without tokens. Default: false
  bool insecure = false;
  /// Longest time in-flight requests get to finish on SIGTERM.
  /// Default: 10 s
  std::chrono::milliseconds drain_timeout{10'000};
  /// Deadline of each request from an HTTP handler to the node's actors.
  /// Default: 30 s
  std::chrono::milliseconds request_timeout{30'000};
  /// Largest request body; a larger one is 413. Default: 10 MiB
  size_t max_body_bytes = 10u << 20;
  /// Largest body of POST /v1/imports, which is read as it arrives, never
  /// held (so not max_body_bytes'); a larger one is 413. 0: no limit.
  /// Default: 0
  size_t max_import_bytes = 0;
  /// Threads serving connections (each open stream holds one).
  /// Default: 64
  size_t threads = 64;
  /// Connections accepted beyond the busy threads before new ones are
  /// answered 503. Default: 256
  size_t max_queued_connections = 256;
  /// A client that sends nothing (or reads nothing) for this long is
  /// disconnected. Default: 10 s
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
  /// Events waiting for one stream's client; past it the stream is cut off
  /// with `event: close` (reason overloaded). Default: 1024
  size_t sse_queue = 1024;
  /// Keep-alive comment interval on streams. Default: 15 s
  std::chrono::milliseconds sse_keepalive{15'000};
  /// Requests per second and burst per token (or client address without
  /// one); 0: no limit. Default: 0 (off), burst 2x the rate
  double rate_limit = 0;
  double rate_burst = 0;
  /// Origins allowed by CORS ("*": any). Default: none
  std::vector<std::string> cors_origins;
  /// TLS certificate and key (PEM); both set: HTTPS. Default: none
  std::string tls_cert_file;
  std::string tls_key_file;

  bool loopback() const;
  std::string url() const;
};

/// Reads the `server` section over the defaults. Errors name the key,
/// e.g. "server.listen: expected HOST:PORT, got '8700'".
[[nodiscard]] expected<server_options> parse_server_options(const json& section);

/// Parses "HOST:PORT" or "[V6]:PORT" into `opts`. Returns a problem or "".
std::string parse_listen(const std::string& text, server_options& opts);

} // namespace cadre::runtime
