#include "agents_config.hpp"

#include "cadre/tools/tool_registry.hpp"
#include "cadre/workflow/agent_spec.hpp"

namespace cadre::runtime {

namespace {

caf::error bad(const std::string& key, const std::string& what) {
  return make_error(errc::invalid_config, key + ": " + what);
}

expected<tools::llm::profile> read_profile(const std::string& name,
                                           const json& section) {
  auto key = "llm.profiles." + name;
  if (!section.is_object())
    return bad(key, "expected a mapping (kind, model, ...)");
  tools::llm::profile p;
  p.name = name;
  p.settings = json::object();
  for (auto& [k, v] : section.items()) {
    auto at = key + "." + k;
    auto text = [&](std::string& out) -> expected<void> {
      if (!v.is_string())
        return bad(at, "expected a string, got " + v.dump());
      out = v.get<std::string>();
      return {};
    };
    auto number = [&](double& out) -> expected<void> {
      if (!v.is_number() || v.get<double>() < 0)
        return bad(at, "expected a number >= 0, got " + v.dump());
      out = v.get<double>();
      return {};
    };
    expected<void> ok{};
    if (k == "kind")
      ok = text(p.kind);
    else if (k == "model")
      ok = text(p.model);
    else if (k == "base_url")
      ok = text(p.base_url);
    else if (k == "api_key_env")
      ok = text(p.api_key_env);
    else if (k == "price_input_per_mtok")
      ok = number(p.price_input_per_mtok);
    else if (k == "price_output_per_mtok")
      ok = number(p.price_output_per_mtok);
    else if (k == "timeout_ms" || k == "connect_timeout_ms"
             || k == "max_attempts") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        return bad(at, "expected a positive integer, got " + v.dump());
      if (k == "timeout_ms")
        p.timeout = std::chrono::milliseconds{v.get<int64_t>()};
      else if (k == "connect_timeout_ms")
        p.connect_timeout = std::chrono::milliseconds{v.get<int64_t>()};
      else
        p.max_attempts = static_cast<uint32_t>(v.get<int64_t>());
    } else if (k == "settings" && v.is_object())
      p.settings.update(v);
    else
      p.settings[k] = v;
    if (!ok)
      return ok.error();
  }
  return p;
}

} // namespace

expected<actors::agents_options>
agents_options_of(const config::node_config& cfg,
                  const tools::tool_registry& registry) {
  actors::agents_options opts;
  if (!cfg.llm.is_object())
    return bad("llm", "expected a mapping (profiles, cache)");
  for (auto& [k, v] : cfg.llm.items()) {
    if (k == "cache") {
      if (!v.is_boolean())
        return bad("llm.cache", "expected true or false, got " + v.dump());
      opts.cache = v.get<bool>();
    } else if (k == "profiles") {
      if (!v.is_object())
        return bad("llm.profiles", "expected a mapping of profile names");
      for (auto& [name, section] : v.items()) {
        auto p = read_profile(name, section);
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
      return bad("llm." + k, "unknown key (known: profiles, cache)");
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
  return opts;
}

} // namespace cadre::runtime
