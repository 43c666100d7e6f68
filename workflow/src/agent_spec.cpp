#include "cadre/workflow/agent_spec.hpp"

#include <algorithm>

#include "document.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::workflow {

namespace {

const std::vector<std::string> spec_keys = {
  "description", "provider",    "model",      "system", "tools",
  "max_iterations", "output_schema", "memory", "temperature", "max_tokens",
  "stream",      "script",
};

} // namespace

std::vector<spec_problem> parse_agent_spec(const std::string& name,
                                           const json& doc, agent_spec& out,
                                           const agent_check& ctx) {
  std::vector<spec_problem> errs;
  out.name = name;
  auto err = [&](std::string ptr, std::string msg) {
    errs.push_back({std::move(ptr), std::move(msg)});
  };
  if (!doc.is_object()) {
    err("", "an agent must be a mapping (provider, model, system, tools, "
            "max_iterations, output_schema, memory...), got "
              + std::string{doc.type_name()});
    return errs;
  }
  auto str = [&](const char* key, std::string& to) {
    if (auto i = doc.find(key); i != doc.end()) {
      if (i->is_string())
        to = i->get<std::string>();
      else
        err(std::string{"/"} + key,
            std::string{"'"} + key + "' must be a string, got "
              + dump_json(*i));
    }
  };
  auto count = [&](const json& v, const std::string& ptr, const char* what,
                   int64_t min, uint32_t& to) {
    if (!v.is_number_integer() || v.get<int64_t>() < min
        || v.get<int64_t>() > 100000)
      err(ptr, std::string{"'"} + what + "' must be an integer from "
                 + std::to_string(min) + " to 100000, got " + dump_json(v));
    else
      to = static_cast<uint32_t>(v.get<int64_t>());
  };
  for (auto it = doc.begin(); it != doc.end(); ++it)
    if (std::find(spec_keys.begin(), spec_keys.end(), it.key())
        == spec_keys.end()) {
      auto best = detail::closest(it.key(), spec_keys);
      err(detail::child_pointer("", it.key()),
          "unknown key '" + it.key() + "' in an agent"
            + (best.empty() ? "" : "; did you mean '" + best + "'?"));
    }
  str("description", out.description);
  str("provider", out.provider);
  str("model", out.model);
  str("system", out.system);
  if (out.provider.empty())
    err("/provider", "'provider' must name an LLM profile");
  if (auto i = doc.find("tools"); i != doc.end()) {
    if (!i->is_array()) {
      err("/tools", "'tools' must be a list of tool names, got "
                      + dump_json(*i));
    } else {
      for (size_t k = 0; k < i->size(); ++k) {
        const auto& t = (*i)[k];
        auto ptr = "/tools/" + std::to_string(k);
        if (!t.is_string() || t.get<std::string>().empty()) {
          err(ptr, "a tool must be named by a string, got " + dump_json(t));
          continue;
        }
        auto tool = t.get<std::string>();
        if (std::find(out.tools.begin(), out.tools.end(), tool)
            != out.tools.end())
          err(ptr, "tool '" + tool + "' is listed twice");
        else if (ctx.tool_exists && !ctx.tool_exists(tool))
          err(ptr, "unknown tool '" + tool
                     + "' in agent '" + name
                     + "' (no tool of that name is registered)");
        else
          out.tools.push_back(tool);
      }
    }
  }
  if (auto i = doc.find("max_iterations"); i != doc.end())
    count(*i, "/max_iterations", "max_iterations", 1, out.max_iterations);
  if (auto i = doc.find("output_schema"); i != doc.end()) {
    if (!i->is_object() && !i->is_boolean() && !i->is_null())
      err("/output_schema", "'output_schema' must be a JSON Schema (an "
                            "object), got "
                              + std::string{i->type_name()});
    else if (auto problem = detail::schema_problem(*i))
      err("/output_schema", "'output_schema': " + *problem);
    else
      out.output_schema = *i;
  }
  if (auto i = doc.find("memory"); i != doc.end()) {
    if (!i->is_object()) {
      err("/memory", "'memory' must be a mapping {scope, window, policy, "
                     "keep}, got "
                       + dump_json(*i));
    } else {
      bool keep_set = false;
      for (auto m = i->begin(); m != i->end(); ++m) {
        if (m.key() == "scope") {
          auto v = m->is_string() ? m->get<std::string>() : dump_json(*m);
          if (v != "task" && v != "execution" && v != "agent")
            err("/memory/scope",
                "'scope' must be task, execution or agent, got " + v);
          else
            out.memory_scope = v;
        } else if (m.key() == "window") {
          count(*m, "/memory/window", "window", 0, out.memory_window);
        } else if (m.key() == "policy") {
          auto v = m->is_string() ? m->get<std::string>() : dump_json(*m);
          if (v != "window" && v != "summary")
            err("/memory/policy",
                "'policy' must be window or summary, got " + v);
          else
            out.memory_policy = v;
        } else if (m.key() == "keep") {
          count(*m, "/memory/keep", "keep", 0, out.memory_keep);
          keep_set = true;
        } else {
          err(detail::child_pointer("/memory", m.key()),
              "unknown key '" + m.key() + "' in 'memory' (known: scope, "
              "window, policy, keep)");
        }
      }
      if (!keep_set)
        out.memory_keep = out.memory_window / 2;
      else if (out.memory_keep > out.memory_window)
        err("/memory/keep", "'keep' (" + std::to_string(out.memory_keep)
                              + ") must not exceed 'window' ("
                              + std::to_string(out.memory_window) + ")");
    }
  }
  if (auto i = doc.find("temperature"); i != doc.end()) {
    if (!i->is_number() || i->get<double>() < 0 || i->get<double>() > 2)
      err("/temperature", "'temperature' must be a number from 0 to 2, got "
                            + dump_json(*i));
    else
      out.temperature = i->get<double>();
  }
  if (auto i = doc.find("max_tokens"); i != doc.end())
    count(*i, "/max_tokens", "max_tokens", 1, out.max_tokens);
  if (auto i = doc.find("stream"); i != doc.end()) {
    if (!i->is_boolean())
      err("/stream", "'stream' must be true or false, got " + dump_json(*i));
    else
      out.stream = i->get<bool>();
  }
  if (auto i = doc.find("script"); i != doc.end()) {
    if (!i->is_string() && !i->is_array() && !i->is_object())
      err("/script", "'script' must be a file path, a list of entries or "
                     "{turns: [...]}, got "
                       + dump_json(*i));
    else
      out.script = *i;
  }
  return errs;
}

std::string agent_id_of(const agent_spec& spec, const std::string& execution,
                        const std::string& task, bool forked) {
  if (spec.memory_scope == "agent" && !forked)
    return spec.name;
  if (spec.memory_scope == "task")
    return execution + "/" + task;
  return execution + "/" + spec.name;
}

} // namespace cadre::workflow
