#pragma once

// The raw CAF baseline the round-trip workloads measure cadre against: an
// echo actor speaking a tool worker's protocol (same message types), and
// the network settings a raw CAF process needs to talk to cadre nodes.

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/config/node_config.hpp"
#include "cadre/messages/cluster_protocol.hpp"
#include "cadre/messages/interfaces.hpp"
#include "cadre/runtime/cluster_options.hpp"

namespace cadre::bench {

// What a tool worker answers.
using raw_echo_actor = caf::typed_actor<
  caf::replies_to<run_atom, task_request>::with<task_result>>;

inline raw_echo_actor::behavior_type raw_echo_impl() {
  return {
    [](run_atom, task_request& req) -> task_result {
      task_result res;
      res.output = std::move(req.input);
      return res;
    },
  };
}

// The request both sides of a round trip answer, as a task would send it.
inline task_request echo_request() {
  task_request req;
  req.execution_id = "bench";
  req.task_id = "t";
  req.tool = "echo";
  req.input = json_value{json{{"i", 1}}};
  req.idempotency_key = "bench/t/1";
  return req;
}

// The settings of a cadre node (runtime/src/node.cpp) that bear on a
// round trip, so that the bench process and the raw peer talk to nodes and
// to each other under the same conditions: the middleman's, and with
// `node_scheduler` the scheduler's (idle workers spin scheduler.spin_polls
// times, then wait on their condition variable at once instead of polling
// with 50 us sleeps; without it, CAF's defaults). The caller loads
// caf::io::middleman.
inline void configure_like_a_node(caf::actor_system_config& cfg,
                                  bool node_scheduler = true) {
  cfg.set("middleman.app-identifiers",
          std::vector<std::string>{cluster_app_identifier("cadre")});
  cfg.set("middleman.workers", size_t{2});
  // A node closes a connection silent for cluster.down_after (5 s).
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{std::chrono::milliseconds{500}});
  cfg.set("middleman.connection-timeout",
          caf::timespan{std::chrono::milliseconds{5000}});
  cfg.set("middleman.enable-automatic-connections", false);
  if (node_scheduler) {
    cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
    // CADRE_SCHEDULER_SPIN_POLLS as a node reads it (config/src/loader.cpp),
    // so a profile can run every side with the same spin.
    auto spin = config::node_config{}.scheduler_spin_polls;
    if (const char* env = std::getenv("CADRE_SCHEDULER_SPIN_POLLS"))
      spin = std::max<size_t>(1, std::strtoull(env, nullptr, 10));
    cfg.set("work-stealing.aggressive-poll-attempts", spin);
  }
}

} // namespace cadre::bench
