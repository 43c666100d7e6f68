#pragma once

#include <string>

#include "cadre/config/node_config.hpp"

namespace cadre::runtime {

struct serve_flags {
  /// --listen HOST:PORT (overrides server.listen).
  std::string listen;
  /// --insecure: serve a non-loopback address without tokens.
  bool insecure = false;
  /// --cluster-listen, --join, --node-name (override cluster.*).
  std::string cluster_listen;
  std::string join;
  std::string node_name;
  /// --insecure-cluster: a non-loopback cluster listener without TLS.
  bool insecure_cluster = false;
};

/// `cadre serve`: runs the node and its HTTP API until SIGTERM or SIGINT,
/// then drains and stops in order. Returns the exit code.
int serve(const config::node_config& cfg, const serve_flags& flags);

} // namespace cadre::runtime
