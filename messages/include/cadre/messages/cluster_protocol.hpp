#pragma once

// What a CAF program needs to pass the handshake of a cadre cluster's
// listener (docs/cluster.md#configuration, docs/embedding.md).

#include <string>

namespace cadre {

/// The version of the messages nodes exchange: nodes and programs of other
/// versions are refused at the handshake. Raised whenever a message that
/// crosses the network changes shape (2: task_request's secret_pointers,
/// node_info's url; 3: tool_offer's relayed_from).
inline constexpr int cluster_protocol_version = 3;

/// The `middleman.app-identifiers` entry of the cluster called
/// `cluster_name` (`cluster.name`, default "cadre"): CAF refuses a
/// connection between ends whose identifiers differ.
inline std::string cluster_app_identifier(const std::string& cluster_name) {
  return "cadre/" + cluster_name + "/"
         + std::to_string(cluster_protocol_version);
}

} // namespace cadre
