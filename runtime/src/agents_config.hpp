#pragma once

// Maps the node config's `llm` and `agents` sections onto agents_options,
// checking them with errors that name the key.

#include "cadre/actors/spawn.hpp"
#include "cadre/config/node_config.hpp"

namespace cadre::tools {
class tool_registry;
} // namespace cadre::tools

namespace cadre::runtime {

/// Reads `llm.profiles.<name>` (kind, model, base_url, api_key_env,
/// price_input_per_mtok, price_output_per_mtok, timeout_ms, max_attempts;
/// every other key goes to the profile's settings), `llm.cache` and
/// `agents.<name>`, and `store.append_deadline` (the agents' append
/// deadline). Scripted profiles are built once to check their script.
/// Errors: errc::invalid_config naming the key, e.g.
/// "agents.writer/tools/0: unknown tool 'ech' ...".
[[nodiscard]] expected<actors::agents_options>
agents_options_of(const config::node_config& cfg,
                  const tools::tool_registry& registry);

} // namespace cadre::runtime
