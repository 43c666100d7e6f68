#pragma once

// The LLM response cache (agents_options::cache, docs/agents.md): one
// one-event log "llmcache:<hash>" per request, holding the request itself
// so a hit is checked in full, not trusted on its hash. The agent actor
// reads and appends; these say what. Private to actors/.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cadre/messages/agent.hpp"
#include "cadre/messages/event.hpp"

namespace cadre::actors::llm_cache {

/// What an entry is compared on, in full: the request (streamed or not
/// alike) and the script a scripted model answers from.
json key_of(const llm_request& req, const json& script);

/// The log of the entry for `key`.
std::string log_of(const json& key);

/// The reply in `entry` (the log's events) when it was stored for `key`,
/// to the byte; nullopt for a miss, a hash collision or an entry written
/// before requests were stored with it.
std::optional<llm_response> hit(const std::vector<event>& entry,
                                 const json& key);

/// The append that stores `res` for `key` in `log`.
append_request entry(const std::string& log, const json& key,
                     const llm_response& res, int64_t now_us);

} // namespace cadre::actors::llm_cache
