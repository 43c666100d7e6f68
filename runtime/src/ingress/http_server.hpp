#pragma once

// The HTTP ingress of `cadre serve` (docs/http-api.md). Handlers run on the
// server's own bounded thread pool, never on a CAF scheduler thread, and
// talk to the node's actors by request/response with a deadline
// (server_options::request_timeout).

#include <cstddef>
#include <functional>
#include <memory>

#include "cadre/messages/error.hpp"
#include "ingress/server_options.hpp"

namespace cadre::runtime {

class node;

class http_server {
public:
  /// `n` must outlive the server.
  http_server(node& n, server_options opts);
  ~http_server();

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Checks the settings (tokens, TLS files) and binds the listening
  /// socket. Returns the port (the chosen one when the options say 0).
  /// Errors: invalid_config (settings), unavailable (the address is taken or
  /// not ours), each naming the address.
  [[nodiscard]] expected<int> bind();

  /// Serves until shutdown(); blocks the calling thread.
  void run();

  /// Graceful stop: refuses new requests (503), ends open streams with
  /// `event: close`, lets requests in flight finish within the drain
  /// timeout, then returns. Safe from any thread, once.
  void shutdown();

  /// Called on run()'s thread when the drain timeout passes with requests
  /// still in hand (their number). Those requests use the server and the
  /// node, so shutdown() waits for them after it returns; `cadre serve`
  /// ends the process in it instead. Set before run().
  void on_drain_timeout(std::function<void(size_t)> f);

  /// The base URL clients use, e.g. "http://127.0.0.1:8700".
  std::string url() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace cadre::runtime
