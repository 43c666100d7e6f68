#include "ingress/execution_view.hpp"

#include <iterator>
#include <map>
#include <utility>

namespace cadre::runtime {

namespace {

struct task_summary {
  std::string state = "pending";
  uint32_t attempts = 0;
  int64_t first_dispatch_us = 0;
  int64_t end_us = 0;
  json output;
  std::string error;
  json prompt;
  int items = 0;
};

// An open question of a map of human tasks (item i of its task).
struct waiting_item {
  std::string task;
  json prompt;
};

// Map items report under their task: "fetch[2]" counts toward "fetch".
std::string task_of(const json& p) {
  return p.value("task", std::string{});
}

json answer_schema_of(const json& definition, const std::string& task) {
  if (!definition.is_object() || !definition.contains("tasks"))
    return nullptr;
  if (auto slash = task.find('/'); slash != std::string::npos) {
    // A question of an item's sub-workflow, "map[i]/ask": in the map's
    // inline workflow.
    auto map = task.substr(0, task.find_first_of("[@/"));
    if (definition["tasks"].is_array())
      for (const auto& t : definition["tasks"])
        if (t.is_object() && t.value("id", std::string{}) == map
            && t.contains("workflow"))
          return answer_schema_of(t["workflow"], task.substr(slash + 1));
    return nullptr;
  }
  const auto& tasks = definition["tasks"];
  auto match = [&](const json& t) -> json {
    if (t.is_object() && t.contains("answer_schema"))
      return t["answer_schema"];
    return nullptr;
  };
  if (tasks.is_array()) {
    for (const auto& t : tasks)
      if (t.is_object() && t.value("id", std::string{}) == task)
        return match(t);
  } else if (tasks.is_object() && tasks.contains(task)) {
    return match(tasks[task]);
  }
  return nullptr;
}

void add_usage(json& total, const json& usage) {
  if (!usage.is_object())
    return;
  for (const char* key : {"input_tokens", "output_tokens", "cost_usd"})
    if (auto i = usage.find(key); i != usage.end() && i->is_number()) {
      if (std::string{key} == "cost_usd")
        total[key] = total[key].get<double>() + i->get<double>();
      else
        total[key] = total[key].get<uint64_t>() + i->get<uint64_t>();
    }
}

} // namespace

json execution_view(const execution_info& info,
                    const std::vector<event>& events) {
  json out = info;
  json definition;
  out["input"] = json::object();
  std::map<std::string, task_summary> tasks;
  // By task and item, so "ask[2]" comes before "ask[10]".
  std::map<std::pair<std::string, int>, waiting_item> waiting_items;
  auto key_of = [](const std::string& id, const json& p) {
    return std::make_pair(id, p.value("item", 0));
  };
  // A map that ended asks its items no more, nor do the sub-workflows of
  // its items or a sub-workflow task ("map[i]/ask", "task/ask"; `prefix`
  // "map[", "map[i]" or "task/").
  auto close_nested = [&](const std::string& prefix) {
    for (auto& [key, t] : tasks)
      if (t.state == "waiting" && key.rfind(prefix, 0) == 0
          && key.find('/') != std::string::npos)
        t.state = "closed";
  };
  auto close_items = [&](const std::string& id) {
    for (auto i = waiting_items.begin(); i != waiting_items.end();)
      i = i->second.task == id ? waiting_items.erase(i) : std::next(i);
    for (const char* after : {"[", "/", "@"})
      close_nested(id + after);
  };
  json usage{{"input_tokens", 0}, {"output_tokens", 0}, {"cost_usd", 0.0}};
  for (const auto& ev : events) {
    const auto& p = ev.payload.get();
    if (ev.type == "execution_submitted") {
      if (p.contains("input"))
        out["input"] = p["input"];
      if (p.contains("definition"))
        definition = p["definition"];
      // Every task of the definition is listed, also those never started.
      if (definition.is_object() && definition.contains("tasks")
          && definition["tasks"].is_array())
        for (const auto& t : definition["tasks"])
          if (t.is_object() && t.contains("id") && t["id"].is_string())
            tasks[t["id"].get<std::string>()];
      continue;
    }
    auto id = task_of(p);
    if (id.empty())
      continue;
    auto& t = tasks[id];
    bool item = p.contains("item");
    if (ev.type == "task_dispatched") {
      if (!item) {
        t.attempts = std::max<uint32_t>(t.attempts, p.value("attempt", 1u));
        t.state = "running";
      }
      if (t.first_dispatch_us == 0)
        t.first_dispatch_us = ev.time_us;
    } else if (ev.type == "map_started") {
      t.state = "running";
      if (p.contains("items") && p["items"].is_array())
        t.items = static_cast<int>(p["items"].size());
      if (t.first_dispatch_us == 0)
        t.first_dispatch_us = ev.time_us;
    } else if (ev.type == "task_completed") {
      if (item) {
        // An item's usage is in its map's completion too.
        waiting_items.erase(key_of(id, p));
        continue;
      }
      add_usage(usage, p.value("usage", json{}));
      close_items(id);
      t.state = "completed";
      t.output = p.value("output", json{});
      t.error.clear();
      t.end_us = ev.time_us;
    } else if (ev.type == "task_failed") {
      if (item) {
        // The item's attempt ended: its sub-workflow asks no more.
        close_nested(id + "[" + std::to_string(p.value("item", 0)) + "]");
        continue;
      }
      t.error = p.value("message", std::string{});
      bool final = p.value("final", false) || !p.contains("retry_in_ms");
      t.state = final ? "failed" : "running";
      if (final) {
        t.end_us = ev.time_us;
        close_items(id);
      }
    } else if (ev.type == "task_skipped") {
      t.state = "skipped";
      t.end_us = ev.time_us;
    } else if (ev.type == "human_requested") {
      if (item) {
        waiting_items[key_of(id, p)] = {id, p.value("prompt", json{})};
        continue;
      }
      t.state = "waiting";
      t.prompt = p.value("prompt", json{});
      if (t.first_dispatch_us == 0)
        t.first_dispatch_us = ev.time_us;
    }
  }
  json tasks_json = json::object();
  json waiting = json::array();
  for (auto& [id, t] : tasks) {
    json j{{"state", t.state}, {"attempts", t.attempts}};
    if (t.first_dispatch_us > 0 && t.end_us >= t.first_dispatch_us)
      j["duration_ms"] = (t.end_us - t.first_dispatch_us) / 1000.0;
    if (t.state == "completed")
      j["output"] = t.output;
    if (!t.error.empty())
      j["error"] = t.error;
    if (t.items > 0)
      j["items"] = t.items;
    if (t.state == "waiting") {
      j["prompt"] = t.prompt;
      waiting.push_back(json{{"task", id},
                             {"prompt", t.prompt},
                             {"answer_schema", answer_schema_of(definition, id)}});
    }
    tasks_json[id] = std::move(j);
  }
  for (auto& [key, w] : waiting_items)
    waiting.push_back(json{{"task", key.first + "["
                                      + std::to_string(key.second) + "]"},
                           {"prompt", std::move(w.prompt)},
                           {"answer_schema",
                            answer_schema_of(definition, w.task)}});
  out["tasks"] = std::move(tasks_json);
  out["usage"] = std::move(usage);
  out["waiting"] = std::move(waiting);
  return out;
}

} // namespace cadre::runtime
