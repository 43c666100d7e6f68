#pragma once

// The `cluster` section of the node config and the flags of `cadre serve`
// that override it (docs/cluster.md#configuration).

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::runtime {

struct cluster_options {
  /// Set by `listen`: the node takes part in a cluster.
  bool enabled = false;
  /// Nodes of one cluster share it; it is part of CAF's app identifier, so
  /// a node of another cluster is refused at the handshake. Default: cadre
  std::string name = "cadre";
  /// Unique in the cluster; letters, digits, '_' and '-' (it ends the ids
  /// of the executions the node owns). Default: the host name and the port
  std::string node_name;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;
  /// host:port others reach this node at. Default: the listen address
  std::string advertise;
  /// host:port of nodes to join.
  std::vector<std::string> join;
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds suspect_after{2000};
  std::chrono::milliseconds down_after{5000};
  /// Accept cluster connections from other hosts without TLS.
  bool insecure = false;
  /// Mutual TLS between nodes (caf::openssl): PEM files of the cluster's
  /// CA, this node's certificate and its key. All three or none.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;

  bool tls() const {
    return !tls_ca.empty();
  }

  /// The advertised address (advertise, else listen).
  std::string address() const;
  /// Whether the listener only accepts loopback connections.
  bool loopback() const;
};

/// The node that owns execution `id`: what follows its last '.' (ids made
/// in a cluster end in ".<node name>"), or "" for an id made alone.
std::string execution_owner(const std::string& id);
/// Reads `section` (null: no cluster). Errors: errc::invalid_config naming
/// the key, e.g. "cluster.join[1]: expected HOST:PORT, got 'x'".
[[nodiscard]] expected<cluster_options>
parse_cluster_options(const json& section);

/// Applies --cluster-listen, --join (comma-separated) and --node-name.
[[nodiscard]] caf::error apply_cluster_flags(cluster_options& opts,
                                             const std::string& listen,
                                             const std::string& join,
                                             const std::string& node_name);

} // namespace cadre::runtime
