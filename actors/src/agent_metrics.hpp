#pragma once

// What agents count (docs/metrics.md): LLM calls, tokens and cost, turns,
// tool calls and failed cache writes. Private to actors/.

#include <memory>

#include "cadre/actors/metrics.hpp"
#include "cadre/messages/fwd.hpp"

namespace cadre::actors {

/// Declares the agents' series with their help texts.
void declare_agent_metrics(metric_registry& m);

/// One LLM call of `req` with `outcome` "ok", "error" or "cached"; `res`
/// (null for an error) gives the model that answered and, when "ok", the
/// tokens and cost. Nothing when `m` is null.
void count_llm_call(const std::shared_ptr<metric_registry>& m,
                    const llm_request& req, const llm_response* res,
                    const char* outcome);

/// Adds one to counter `name` when `m` is set.
void count_agent(const std::shared_ptr<metric_registry>& m, const char* name,
                 const metric_labels& labels);

} // namespace cadre::actors
