#include "cadre/config/node_config.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "cadre/messages/duration.hpp"
#include "cadre/schedule/cron.hpp"

namespace cadre::config {

namespace {

std::string where(const std::string& file, const YAML::Node& node,
                  const std::string& key) {
  auto mark = node.Mark();
  return file + ":" + std::to_string(mark.line + 1) + ":"
         + std::to_string(mark.column + 1) + ": " + key;
}

json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (auto it : node)
        out[it.first.as<std::string>()] = to_json(it.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (auto it : node)
        out.push_back(to_json(it));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const auto& s = node.Scalar();
      if (node.Tag() == "!")
        return s;
      if (s == "true")
        return true;
      if (s == "false")
        return false;
      if (s == "null" || s == "~")
        return nullptr;
      char* end = nullptr;
      auto i = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && *end == '\0')
        return i;
      auto d = std::strtod(s.c_str(), &end);
      if (!s.empty() && *end == '\0')
        return d;
      return s;
    }
    default:
      return nullptr;
  }
}

template <class T>
expected<T> scalar(const std::string& file, const YAML::Node& node,
                   const std::string& key, const char* expect) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    return make_error(errc::invalid_config,
                      where(file, node, key) + ": expected " + expect);
  }
}

caf::error env_error(const char* name, const std::string& what) {
  return make_error(errc::invalid_config, std::string{name} + ": " + what);
}

/// The variable's value; nullopt when unset or empty (an empty value is
/// "not set", so scripts can pass `CADRE_LLM_KIND=` through).
std::optional<std::string> env_value(const char* name) {
  auto* v = std::getenv(name);
  if (!v || *v == '\0')
    return std::nullopt;
  return std::string{v};
}

/// "250ms", "30s", "1.5m", "1h30m", or digits alone (milliseconds), as
/// milliseconds; nullopt when malformed. The profile's own parser
/// (tools/src/llm/profile.cpp) reads the same forms.
std::optional<double> duration_ms(const std::string& text) {
  if (text.find_first_not_of("0123456789") == std::string::npos)
    return std::strtod(text.c_str(), nullptr);
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size()
           && (std::isdigit(static_cast<unsigned char>(text[i]))
               || text[i] == '.'))
      ++i;
    if (i == start)
      return std::nullopt;
    char* end = nullptr;
    auto number = text.substr(start, i - start);
    auto value = std::strtod(number.c_str(), &end);
    if (*end != '\0')
      return std::nullopt;
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])))
      ++i;
    auto unit = std::string_view{text}.substr(unit_start, i - unit_start);
    if (unit == "ms")
      total += value;
    else if (unit == "s")
      total += value * 1000;
    else if (unit == "m")
      total += value * 60'000;
    else if (unit == "h")
      total += value * 3'600'000;
    else
      return std::nullopt;
  }
  return total;
}

bool env_name(std::string_view x) {
  if (x.empty() || std::isdigit(static_cast<unsigned char>(x.front())))
    return false;
  for (unsigned char c : x)
    if (!std::isalnum(c) && c != '_')
      return false;
  return true;
}

/// CADRE_LLM_*: the profile `default` under llm.profiles, which every agent
/// without a `provider` uses. A kind other than the file's starts the
/// profile afresh (the file's keys were for another protocol); the other
/// variables override single keys.
expected<void> apply_llm_environment(json& llm) {
  auto kind = env_value("CADRE_LLM_KIND");
  auto base_url = env_value("CADRE_LLM_BASE_URL");
  auto model = env_value("CADRE_LLM_MODEL");
  auto key_env = env_value("CADRE_LLM_API_KEY_ENV");
  auto timeout = env_value("CADRE_LLM_TIMEOUT");
  if (!kind && !base_url && !model && !key_env && !timeout)
    return {};
  // The kinds of tools/src/llm/providers.def; config does not link tools/.
  static const std::set<std::string> kinds
    = {"anthropic", "ollama", "openai", "scripted"};
  if (kind && !kinds.count(*kind))
    return env_error("CADRE_LLM_KIND",
                     "unknown provider '" + *kind
                       + "' (known: anthropic, ollama, openai, scripted)");
  if (base_url && base_url->rfind("http://", 0) != 0
      && base_url->rfind("https://", 0) != 0)
    // Not echoed: a URL may carry credentials.
    return env_error("CADRE_LLM_BASE_URL",
                     "must start with http:// or https://");
  if (key_env && !env_name(*key_env))
    // Never echoed: a key put here by mistake is a secret.
    return env_error("CADRE_LLM_API_KEY_ENV",
                     "must be the name of the environment variable that "
                     "holds the API key (letters, digits and _, such as "
                     "OPENAI_API_KEY), not the key itself");
  json timeout_value;
  if (timeout) {
    auto ms = duration_ms(*timeout);
    constexpr double year_ms = 365.0 * 24 * 3600 * 1000;
    if (!ms || !std::isfinite(*ms) || *ms < 1 || *ms > year_ms)
      return env_error("CADRE_LLM_TIMEOUT",
                       "expected a positive duration such as \"30s\", "
                       "\"500ms\", \"2m\" or a number of milliseconds, "
                       "got '" + *timeout + "'");
    timeout_value = timeout->find_first_not_of("0123456789")
                        == std::string::npos
                      ? json(static_cast<int64_t>(*ms))
                      : json(*timeout);
  }
  if (!llm.is_object())
    return env_error("CADRE_LLM_*", "the config's llm section is not a "
                                    "mapping");
  auto& profiles = llm["profiles"];
  if (profiles.is_null())
    profiles = json::object();
  if (!profiles.is_object())
    return env_error("CADRE_LLM_*", "the config's llm.profiles is not a "
                                    "mapping of profile names");
  auto& profile = profiles["default"];
  if (!profile.is_object())
    profile = json::object();
  json file_kind = profile.contains("kind") ? profile["kind"] : json{};
  if (kind && file_kind != json(*kind))
    profile = json{{"kind", *kind}};
  if (!profile.contains("kind")) {
    const char* set = base_url ? "CADRE_LLM_BASE_URL"
                      : model  ? "CADRE_LLM_MODEL"
                      : key_env ? "CADRE_LLM_API_KEY_ENV"
                                : "CADRE_LLM_TIMEOUT";
    return env_error(set, "set CADRE_LLM_KIND too: the config has no "
                          "llm.profiles.default to apply it to");
  }
  if (base_url)
    profile["base_url"] = *base_url;
  if (model)
    profile["model"] = *model;
  if (key_env)
    profile["api_key_env"] = *key_env;
  if (timeout)
    profile["timeout"] = timeout_value;
  return {};
}

caf::error config_error(const std::string& file, const YAML::Node& node,
                        const std::string& key, const std::string& what) {
  return make_error(errc::invalid_config,
                    where(file, node, key) + ": " + what);
}

bool schedule_name(std::string_view x) {
  if (x.empty() || x.size() > 128)
    return false;
  for (unsigned char c : x)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

/// One entry of `schedules`, checked key by key; `names` holds the names
/// of the entries before it.
expected<schedule::spec> load_schedule(const std::string& file,
                                       const YAML::Node& item,
                                       const std::string& at,
                                       std::set<std::string>& names) {
  if (!item.IsMap())
    return config_error(file, item, at,
                        "expected a mapping with name, workflow and every "
                        "or cron");
  schedule::spec s;
  auto mark = item.Mark();
  s.origin = file + ":" + std::to_string(mark.line + 1) + ":"
             + std::to_string(mark.column + 1);
  std::optional<YAML::Node> every;
  std::optional<YAML::Node> cron;
  bool has_name = false;
  bool has_workflow = false;
  for (auto it : item) {
    auto key = it.first.as<std::string>();
    auto path = at + "." + key;
    const auto& value = it.second;
    auto text = [&](const char* expect) {
      return scalar<std::string>(file, value, path, expect);
    };
    if (key == "name") {
      auto v = text("a name");
      if (!v)
        return v.error();
      if (!value.IsScalar() || !schedule_name(*v))
        return config_error(file, value, path,
                            "expected 1 to 128 letters, digits, '.', '_' "
                            "or '-'");
      if (!names.insert(*v).second)
        return config_error(file, value, path,
                            "another schedule is named '" + *v + "'");
      s.name = *v;
      has_name = true;
    } else if (key == "workflow") {
      auto v = text("the path of a workflow file");
      if (!v)
        return v.error();
      if (!value.IsScalar() || v->empty())
        return config_error(file, value, path,
                            "expected the path of a workflow file");
      std::filesystem::path p{*v};
      if (p.is_relative())
        p = std::filesystem::path{file}.parent_path() / p;
      s.workflow = p.lexically_normal().string();
      has_workflow = true;
    } else if (key == "input") {
      s.input = to_json(value);
    } else if (key == "every") {
      every = value;
    } else if (key == "cron") {
      cron = value;
    } else if (key == "missed") {
      auto v = text("skip or run_once");
      if (!v)
        return v.error();
      if (!schedule::from_string(*v, s.missed))
        return config_error(file, value, path,
                            "expected skip or run_once, got '" + *v + "'");
    } else if (key == "overlap") {
      auto v = text("skip, queue or allow");
      if (!v)
        return v.error();
      if (!schedule::from_string(*v, s.overlap))
        return config_error(file, value, path,
                            "expected skip, queue or allow, got '" + *v
                              + "'");
    } else {
      return config_error(file, it.first, path,
                          "unknown key (known: name, workflow, input, "
                          "every, cron, missed, overlap)");
    }
  }
  if (!has_name)
    return config_error(file, item, at, "name is required");
  if (!has_workflow)
    return config_error(file, item, at + " (" + s.name + ")",
                        "workflow is required");
  if (every && cron)
    return config_error(file, *cron, at + ".cron",
                        "set either every or cron, not both");
  if (every) {
    int64_t ms = 0;
    if (!every->IsScalar())
      return config_error(file, *every, at + ".every",
                          "expected a duration such as 30s, 5m or 1h");
    if (auto problem = parse_duration(to_json(*every), ms); !problem.empty())
      return config_error(file, *every, at + ".every", problem);
    if (ms < 1000)
      return config_error(file, *every, at + ".every",
                          "at least 1s, got " + every->Scalar());
    s.every_ms = ms;
  } else if (cron) {
    auto v = scalar<std::string>(file, *cron, at + ".cron",
                                 "a cron expression");
    if (!v)
      return v.error();
    schedule::cron_error bad;
    if (!cron->IsScalar() || !schedule::cron::parse(*v, &bad)) {
      // Point at the field at fault: a quoted scalar starts after its
      // quote.
      auto m = cron->Mark();
      auto column = m.column + 1 + static_cast<int>(bad.offset)
                    + (cron->Tag() == "!" ? 1 : 0);
      return make_error(errc::invalid_config,
                        file + ":" + std::to_string(m.line + 1) + ":"
                          + std::to_string(column) + ": " + at
                          + ".cron: " + bad.message);
    }
    s.cron = *v;
  } else {
    return config_error(file, item, at + " (" + s.name + ")",
                        "set every (a duration such as 5m) or cron (five "
                        "fields such as \"*/5 * * * *\")");
  }
  return s;
}

expected<std::vector<schedule::spec>>
load_schedules(const std::string& file, const YAML::Node& node) {
  std::vector<schedule::spec> out;
  if (node.IsNull())
    return out;
  if (!node.IsSequence())
    return config_error(file, node, "schedules", "expected a list");
  std::set<std::string> names;
  size_t i = 0;
  for (auto item : node) {
    auto s = load_schedule(file, item,
                           "schedules[" + std::to_string(i++) + "]", names);
    if (!s)
      return s.error();
    out.push_back(std::move(*s));
  }
  return out;
}

} // namespace

expected<node_config> load_file(const std::string& path, node_config cfg) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return make_error(errc::invalid_config, path + ": cannot read the file");
  } catch (const YAML::ParserException& e) {
    return make_error(errc::invalid_config,
                      path + ":" + std::to_string(e.mark.line + 1) + ":"
                        + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (root.IsNull())
    return cfg;
  if (!root.IsMap())
    return make_error(errc::invalid_config,
                      where(path, root, "/") + ": expected a mapping");
  static const std::set<std::string> top
    = {"store", "tools", "executions", "scheduler", "llm", "agents",
       "server", "log", "schedules"};
  for (auto it : root) {
    auto key = it.first.as<std::string>();
    if (!top.count(key))
      return make_error(errc::invalid_config,
                        where(path, it.first, key)
                          + ": unknown key (known: store, tools, "
                            "executions, scheduler, llm, agents, server, "
                            "log, schedules)");
  }
  if (auto store = root["store"]) {
    for (auto it : store) {
      auto key = it.first.as<std::string>();
      if (key == "dir") {
        auto v = scalar<std::string>(path, it.second, "store.dir", "a path");
        if (!v)
          return v.error();
        cfg.store_dir = *v;
      } else if (key == "sync") {
        auto v = scalar<bool>(path, it.second, "store.sync",
                              "true or false");
        if (!v)
          return v.error();
        cfg.store_sync = *v;
      } else if (key == "mode") {
        auto v = scalar<std::string>(path, it.second, "store.mode",
                                     "wal or sync");
        if (!v)
          return v.error();
        if (*v != "wal" && *v != "sync")
          return make_error(errc::invalid_config,
                            where(path, it.second, "store.mode")
                              + ": expected wal or sync, got " + *v);
        cfg.store_sync = *v == "sync";
      } else {
        return make_error(errc::invalid_config,
                          where(path, it.first, "store." + key)
                            + ": unknown key (known: dir, mode, sync)");
      }
    }
  }
  if (auto tools = root["tools"]) {
    if (!tools.IsMap())
      return make_error(errc::invalid_config,
                        where(path, tools, "tools") + ": expected a mapping");
    for (auto it : tools) {
      auto name = it.first.as<std::string>();
      if (name == "workers") {
        auto v = scalar<size_t>(path, it.second, "tools.workers",
                                "a positive integer");
        if (!v)
          return v.error();
        cfg.default_workers = *v;
        continue;
      }
      tool_config tc;
      tc.settings = to_json(it.second);
      if (!tc.settings.is_object())
        return make_error(errc::invalid_config,
                          where(path, it.second, "tools." + name)
                            + ": expected a mapping");
      if (auto w = it.second["workers"]) {
        auto v = scalar<size_t>(path, w, "tools." + name + ".workers",
                                "a positive integer");
        if (!v)
          return v.error();
        tc.workers = *v;
        tc.settings.erase("workers");
      }
      if (auto q = it.second["max_queue"]) {
        auto v = scalar<size_t>(path, q, "tools." + name + ".max_queue",
                                "a positive integer");
        if (!v)
          return v.error();
        if (*v == 0)
          return make_error(errc::invalid_config,
                            where(path, q, "tools." + name + ".max_queue")
                              + ": expected a positive integer");
        tc.max_queue = *v;
        tc.settings.erase("max_queue");
      }
      cfg.tools[name] = std::move(tc);
    }
  }
  if (auto ex = root["executions"]) {
    if (auto v = ex["max_restarts"]) {
      auto r = scalar<size_t>(path, v, "executions.max_restarts",
                              "a non-negative integer");
      if (!r)
        return r.error();
      cfg.max_restarts = *r;
    }
    if (auto v = ex["restart_window_ms"]) {
      auto r = scalar<int64_t>(path, v, "executions.restart_window_ms",
                               "milliseconds");
      if (!r)
        return r.error();
      cfg.restart_window_ms = *r;
    }
  }
  // Checked by runtime/ when the node or the server starts
  // (agents_config.cpp, server_options.cpp), with errors that name the key.
  for (auto [key, section_json] :
       {std::pair{"llm", &cfg.llm}, std::pair{"agents", &cfg.agents},
        std::pair{"server", &cfg.server}, std::pair{"log", &cfg.log}})
    if (auto section = root[key]) {
      auto j = to_json(section);
      if (!j.is_object())
        return make_error(errc::invalid_config,
                          where(path, section, key) + ": expected a mapping");
      *section_json = std::move(j);
    }
  if (auto sched = root["schedules"]) {
    auto specs = load_schedules(path, sched);
    if (!specs)
      return specs.error();
    cfg.schedules = std::move(*specs);
  }
  if (auto sc = root["scheduler"]) {
    if (auto v = sc["threads"]) {
      auto r = scalar<size_t>(path, v, "scheduler.threads",
                              "a non-negative integer");
      if (!r)
        return r.error();
      cfg.scheduler_threads = *r;
    }
  }
  return cfg;
}

expected<node_config> apply_environment(node_config cfg) {
  auto num = [](const char* name, size_t& out) -> expected<void> {
    auto* v = std::getenv(name);
    if (!v)
      return {};
    char* end = nullptr;
    auto x = std::strtoull(v, &end, 10);
    if (*v == '\0' || *end != '\0')
      return make_error(errc::invalid_config,
                        std::string{name} + ": expected an integer, got '"
                          + v + "'");
    out = x;
    return {};
  };
  if (auto* v = std::getenv("CADRE_STORE_DIR"))
    cfg.store_dir = v;
  if (auto* v = std::getenv("CADRE_STORE_SYNC")) {
    std::string s = v;
    if (s == "1" || s == "true")
      cfg.store_sync = true;
    else if (s == "0" || s == "false")
      cfg.store_sync = false;
    else
      return make_error(errc::invalid_config,
                        "CADRE_STORE_SYNC: expected true or false, got '" + s
                          + "'");
  }
  if (auto r = num("CADRE_WORKERS", cfg.default_workers); !r)
    return r.error();
  if (auto r = num("CADRE_SCHEDULER_THREADS", cfg.scheduler_threads); !r)
    return r.error();
  if (auto r = apply_llm_environment(cfg.llm); !r)
    return r.error();
  return cfg;
}

} // namespace cadre::config
