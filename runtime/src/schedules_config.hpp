#pragma once

// The workflows of the node config's schedules, read and checked when
// `cadre serve` starts.

#include <vector>

#include "cadre/actors/schedules.hpp"
#include "cadre/config/node_config.hpp"

namespace cadre::tools {
class tool_registry;
} // namespace cadre::tools

namespace cadre::runtime {

/// Reads and validates the workflow file of each schedule (its tools among
/// `registry`, its agents among the workflow's or the config's) and checks
/// the schedule's input against the workflow's input_schema, so a schedule
/// that could never run stops the start instead of failing every firing.
/// Errors: errc::invalid_config naming the schedule's place in the config
/// and what is wrong, e.g. "cadre.yaml:4:5: schedule monitor: monitor.yaml:
/// 7:11: /tasks/0/tool: unknown tool 'airflw'".
[[nodiscard]] expected<std::vector<actors::scheduled_workflow>>
load_scheduled_workflows(const config::node_config& cfg,
                         const tools::tool_registry& registry);

} // namespace cadre::runtime
