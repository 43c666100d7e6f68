#include "agents_config.hpp"

#include "cadre/tools/llm/provider.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "cadre/workflow/agent_spec.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::runtime {

namespace {

caf::error bad(const std::string& key, const std::string& what) {
  return make_error(errc::invalid_config, key + ": " + what);
}

} // namespace

expected<actors::agents_options>
agents_options_of(const config::node_config& cfg,
                  const tools::tool_registry& registry) {
  actors::agents_options opts;
  if (!cfg.llm.is_object())
    return bad("llm",
               "expected a mapping (profiles, cache, max_finished_turns)");
  for (auto& [k, v] : cfg.llm.items()) {
    if (k == "cache") {
      if (!v.is_boolean())
        return bad("llm.cache", "expected true or false, got " + dump_json(v));
      opts.cache = v.get<bool>();
    } else if (k == "max_finished_turns") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1
          || v.get<int64_t>() > 1000000)
        return bad("llm.max_finished_turns",
                   "expected a whole number from 1 to 1000000, got "
                     + dump_json(v));
      opts.max_finished_turns = v.get<size_t>();
    } else if (k == "profiles") {
      if (!v.is_object())
        return bad("llm.profiles", "expected a mapping of profile names");
      for (auto& [name, section] : v.items()) {
        auto p = tools::llm::parse_profile(name, section);
        if (!p)
          return p.error();
        // A script that does not parse is a config error now, not at the
        // first call.
        if (p->kind == "scripted")
          if (auto made = tools::llm::make_provider(*p); !made)
            return made.error();
        opts.profiles[name] = std::move(*p);
      }
    } else {
      return bad("llm." + k, "unknown key (known: profiles, cache, "
                             "max_finished_turns)");
    }
  }
  if (!cfg.agents.is_object())
    return bad("agents", "expected a mapping of agent names");
  workflow::agent_check check;
  check.tool_exists = [&registry](const std::string& n) {
    return registry.contains(n);
  };
  for (auto& [name, doc] : cfg.agents.items()) {
    workflow::agent_spec spec;
    auto problems = workflow::parse_agent_spec(name, doc, spec, check);
    if (!problems.empty())
      return bad("agents." + name + problems.front().pointer,
                 problems.front().message);
    if (spec.provider != "default" && !opts.profiles.count(spec.provider))
      return bad("agents." + name + "/provider",
                 "no LLM profile '" + spec.provider
                   + "' under llm.profiles");
  }
  opts.agents = cfg.agents;
  opts.append_deadline = std::chrono::milliseconds{cfg.append_deadline_ms};
  return opts;
}

} // namespace cadre::runtime
