#include "cadre/config/node_config.hpp"

#include <cstdlib>
#include <set>

#include <yaml-cpp/yaml.h>

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
    = {"store", "tools", "executions", "scheduler", "llm", "agents"};
  for (auto it : root) {
    auto key = it.first.as<std::string>();
    if (!top.count(key))
      return make_error(errc::invalid_config,
                        where(path, it.first, key)
                          + ": unknown key (known: store, tools, "
                            "executions, scheduler, llm, agents)");
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
  // Checked by the node when it starts (runtime/src/agents_config.cpp),
  // with errors that name the key.
  for (const char* key : {"llm", "agents"})
    if (auto section = root[key]) {
      auto j = to_json(section);
      if (!j.is_object())
        return make_error(errc::invalid_config,
                          where(path, section, key) + ": expected a mapping");
      (std::string{key} == "llm" ? cfg.llm : cfg.agents) = std::move(j);
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
  return cfg;
}

} // namespace cadre::config
