#pragma once

#include <chrono>

namespace cadre::actors {

/// The deadline of a request to another actor of the node when the work
/// behind it is local and short: a store read or append, a status, a
/// describe, an answer to a human task. A callee that does not answer in
/// this time is stuck; the caller fails with caf::sec::request_timeout (a
/// coordinator or agent then exits and is restarted from its log) instead
/// of waiting forever. Requests whose work is long by nature (a tool call,
/// an LLM call, an agent turn, a child execution) carry the work's own
/// deadline, or say in a comment why they have none.
inline constexpr std::chrono::seconds local_deadline{60};

} // namespace cadre::actors
