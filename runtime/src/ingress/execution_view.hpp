#pragma once

// What GET /v1/executions/{id} shows: the index entry plus a summary folded
// from the execution's events. Pure: tested without a node.

#include <vector>

#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::runtime {

/// {id, workflow, version, status, created_us, updated_us, last_seq, output,
/// error, input, tasks: {id: {state, attempts, duration_ms, output | error}},
/// usage: {input_tokens, output_tokens, cost_usd}, waiting: [{task, prompt,
/// answer_schema}]}. `events` are the execution's events in order.
json execution_view(const execution_info& info,
                    const std::vector<event>& events);

} // namespace cadre::runtime
