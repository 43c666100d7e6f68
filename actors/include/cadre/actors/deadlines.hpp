#pragma once

#include <chrono>

namespace cadre::actors {

/// The deadline of a request to another actor of the node when the work
/// behind it is local and short: a store read, a status, a describe, an
/// answer to a human task; and the default of an append's deadline
/// (`store.append_deadline`, the append_deadline of each writer's
/// options). A callee that does not answer in this time is stuck; the
/// caller fails with caf::sec::request_timeout (an append: with
/// errc::unavailable naming the append and its deadline; a coordinator,
/// agent or the schedules actor then exits and is restarted from its log)
/// instead of waiting forever. Requests whose work is long by nature (a
/// tool call, an LLM call, an agent turn, a child execution) carry the
/// work's own deadline, or say in a comment why they have none.
inline constexpr std::chrono::seconds local_deadline{60};

} // namespace cadre::actors

namespace cadre::actors {

/// The longest wait for a tool call without a deadline of its own on
/// another node: a node that vanishes mid-call takes the answer with it,
/// and a call there must end some time. Coordinators re-dispatch such a
/// call as soon as the node's link is lost; this is the backstop.
inline constexpr std::chrono::minutes remote_tool_backstop{30};

} // namespace cadre::actors
