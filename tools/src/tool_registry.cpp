#include "cadre/tools/tool_registry.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cadre/lang/json_schema.hpp"

namespace cadre::tools {

namespace {

/// "a.b[2]" for the JSON pointer "/a/b/2" into `doc`: a config key as the
/// YAML file spells it.
std::string dotted(const json& doc, const std::string& pointer) {
  std::vector<std::string> tokens;
  for (auto p = json::json_pointer{pointer}; !p.empty(); p.pop_back())
    tokens.insert(tokens.begin(), p.back());
  std::string out;
  const json* at = &doc;
  for (const auto& token : tokens) {
    if (at != nullptr && at->is_array()) {
      out += "[" + token + "]";
      size_t i = 0;
      auto [end, ec] = std::from_chars(token.data(),
                                       token.data() + token.size(), i);
      at = ec == std::errc{} && end == token.data() + token.size()
               && i < at->size()
             ? &(*at)[i]
             : nullptr;
      continue;
    }
    out += (out.empty() ? "" : ".") + token;
    if (at == nullptr || !at->is_object())
      at = nullptr;
    else if (auto i = at->find(token); i != at->end())
      at = &*i;
    else
      at = nullptr;
  }
  return out;
}

/// "an integer or a string" for a schema's "type".
std::string type_words(const json& type) {
  auto one = [](const json& t) -> std::string {
    auto name = t.is_string() ? t.get<std::string>() : t.dump();
    if (name == "integer" || name == "object" || name == "array")
      return "an " + name;
    if (name == "boolean")
      return "true or false";
    if (name == "null")
      return "null";
    return "a " + name;
  };
  if (!type.is_array())
    return one(type);
  std::string out;
  for (const auto& t : type)
    out += (out.empty() ? "" : " or ") + one(t);
  return out;
}

/// What a setting must be, said from the schema keyword that refused it
/// ("must be an integer in [1, 20]"); valijson's words for the others.
std::string what_failed(const json& schema, const schema_error& e) {
  auto at = json::json_pointer{e.schema_pointer};
  if (at.empty() || !schema.contains(at))
    return e.message;
  const json& value = schema.at(at);
  const json& sub = schema.at(at.parent_pointer());
  const auto& k = e.keyword;
  if (k == "type" || k == "minimum" || k == "maximum") {
    // The whole statement, whichever part failed: "must be an integer in
    // [1, 20]" for "soon" as for 0.
    auto type = sub.value("type", json("number"));
    auto out = "must be " + type_words(type);
    if (type == "string" && sub.value("minLength", 0) == 1)
      out = "must be a non-empty string";
    else if (type == "array" && sub.contains("items")
             && sub["items"].value("type", json()).is_string())
      out += " of " + sub["items"]["type"].get<std::string>() + "s";
    auto min = sub.find("minimum");
    auto max = sub.find("maximum");
    if (min != sub.end() && max != sub.end())
      out += " in [" + min->dump() + ", " + max->dump() + "]";
    else if (min != sub.end())
      out += " >= " + min->dump();
    else if (max != sub.end())
      out += " <= " + max->dump();
    return out;
  }
  if (k == "enum") {
    std::string out;
    for (const auto& v : value)
      out += (out.empty() ? "" : ", ")
             + (v.is_string() ? v.get<std::string>() : v.dump());
    return "must be one of " + out;
  }
  if (k == "minLength" && value == 1)
    return "must be a non-empty string";
  if (k == "minItems")
    return "must have at least " + value.dump() + " item"
           + (value == 1 ? "" : "s");
  if (k == "pattern" && sub.contains("description"))
    return "must be " + sub["description"].get<std::string>();
  return e.message;
}

/// The keys of the object at `e.pointer` in `settings` that the schema at
/// `e.schema_pointer` (its additionalProperties) does not name: each one
/// "unknown setting (known: a, b)", which valijson's words do not say.
std::vector<std::pair<std::string, std::string>>
unknown_keys(const json& schema, const json& settings, const schema_error& e) {
  std::vector<std::pair<std::string, std::string>> out;
  auto at = json::json_pointer{e.schema_pointer};
  auto where = json::json_pointer{e.pointer};
  if (at.empty() || at.back() != "additionalProperties"
      || !schema.contains(at) || schema.at(at) != false
      || !settings.contains(where))
    return out;
  const auto& sub = schema.at(at.parent_pointer());
  const auto& obj = settings.at(where);
  if (!sub.is_object() || !obj.is_object())
    return out;
  auto props = sub.value("properties", json::object());
  std::string known;
  for (const auto& [key, value] : props.items())
    known += (known.empty() ? "" : ", ") + key;
  for (const auto& [key, value] : obj.items())
    if (!props.contains(key))
      out.emplace_back((where / key).to_string(),
                       "unknown setting (known: "
                         + (known.empty() ? std::string{"none"} : known)
                         + ")");
  return out;
}

/// `x` without the members that are null: a key written without a value
/// (`key:` in YAML) means its default.
json without_nulls(const json& x) {
  if (!x.is_object())
    return x;
  json out = json::object();
  for (const auto& [key, value] : x.items())
    if (!value.is_null())
      out[key] = without_nulls(value);
  return out;
}

} // namespace

const json& pool_settings_schema() {
  static const json schema{
    {"type", "object"},
    {"properties",
     {{"workers",
       {{"type", "integer"},
        {"minimum", 1},
        {"description", "Workers of the tool's pool. Default: tools.workers "
                        "(2)"}}},
      {"max_queue",
       {{"type", "integer"},
        {"minimum", 1},
        {"description", "Calls waiting for a worker before new ones are "
                        "refused (overloaded). Default: 65536"}}},
      {"enabled",
       {{"type", "boolean"},
        {"description", "False: this node runs no pool of the tool; in a "
                        "cluster, calls go to the nodes that do. Default: "
                        "true"}}}}}};
  return schema;
}

pool_settings pool_settings_of(const json& section) {
  pool_settings out;
  if (!section.is_object())
    return out;
  // Checked by the schema above; null is the default.
  auto read = [&](const char* key, auto& field) {
    if (auto i = section.find(key); i != section.end() && !i->is_null())
      field = i->get<std::decay_t<decltype(field)>>();
  };
  read("workers", out.workers);
  read("max_queue", out.max_queue);
  read("enabled", out.enabled);
  return out;
}

expected<tool_registry::entry>
tool_registry::make_entry(const std::string& name, tool_factory factory,
                          const json& settings_schema) {
  const auto& pool = pool_settings_schema()["properties"];
  entry e;
  e.schema = settings_schema;
  if (settings_schema.is_null()) {
    e.combined = pool_settings_schema();
  } else {
    if (!settings_schema.is_object())
      return make_error(errc::invalid_config,
                        "tool " + name
                          + ": the settings schema is not a JSON object");
    e.combined = settings_schema;
    auto& props = e.combined["properties"];
    if (props.is_null())
      props = json::object();
    for (const auto& [key, value] : pool.items()) {
      if (props.contains(key))
        return make_error(errc::invalid_config,
                          "tool " + name + ": the settings schema declares '"
                            + key + "', a key of the tool's pool");
      props[key] = value;
    }
  }
  auto compiled = json_schema::compile(e.combined);
  if (!compiled)
    return make_error(errc::invalid_config,
                      "tool " + name + ": the settings schema does not "
                        + "compile: " + message_of(compiled.error()));
  e.compiled = std::make_shared<const json_schema>(std::move(*compiled));
  e.factory = std::move(factory);
  return e;
}

void tool_registry::add(std::string name, tool_factory factory,
                        const json& settings_schema) {
  auto e = make_entry(name, std::move(factory), settings_schema);
  if (!e)
    throw std::logic_error(message_of(e.error()));
  entries_[std::move(name)] = std::move(*e);
}

expected<void> tool_registry::add_extra(std::string name, extra_tool tool) {
  // LLM providers take tool names of at most 64 such characters.
  auto name_char = [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-';
  };
  if (name.empty() || name.size() > 64
      || !std::all_of(name.begin(), name.end(), name_char))
    return make_error(errc::invalid_config,
                      "tool name '" + name
                        + "': use 1 to 64 letters, digits, '_' or '-'");
  if (contains(name))
    return make_error(errc::invalid_config,
                      "tool '" + name + "' is already registered");
  if (!tool.factory)
    return make_error(errc::invalid_config,
                      "tool '" + name + "' was given no factory");
  auto e = make_entry(name, std::move(tool.factory), tool.settings_schema);
  if (!e)
    return std::move(e.error());
  entries_[std::move(name)] = std::move(*e);
  return {};
}

bool tool_registry::contains(const std::string& name) const {
  return entries_.count(name) != 0;
}

const json& tool_registry::settings_schema(const std::string& name) const {
  static const json none;
  auto i = entries_.find(name);
  return i == entries_.end() ? none : i->second.schema;
}

expected<void> tool_registry::check_settings(const std::string& name,
                                             const json& settings) const {
  auto i = entries_.find(name);
  if (i == entries_.end())
    return {};
  return check(name, i->second, settings);
}

expected<void> tool_registry::check(const std::string& name, const entry& e,
                                    const json& settings) {
  const json doc = without_nulls(settings.is_null() ? json::object()
                                                    : settings);
  auto errors = e.compiled->validate(doc);
  if (errors.empty())
    return {};
  std::string msg;
  auto say = [&](const std::string& pointer, const std::string& what) {
    auto key = dotted(doc, pointer);
    msg += (msg.empty() ? "" : "; ") + std::string{"tools."} + name
           + (key.empty() ? "" : "." + key) + ": " + what;
  };
  for (const auto& err : errors) {
    auto unknown = unknown_keys(e.combined, doc, err);
    for (const auto& [pointer, what] : unknown)
      say(pointer, what);
    if (unknown.empty())
      say(err.pointer, what_failed(e.combined, err));
  }
  return make_error(errc::invalid_config, std::move(msg));
}

tool_factory tool_registry::factory(const std::string& name) const {
  auto i = entries_.find(name);
  if (i == entries_.end() || !i->second.factory)
    return {};
  // A copy: the pool may outlive the registry.
  return [name, e = i->second](const json_value& settings)
           -> expected<std::unique_ptr<tool>> {
    if (auto ok = check(name, e, settings.get()); !ok)
      return std::move(ok.error());
    return call(e, settings);
  };
}

expected<std::unique_ptr<tool>> tool_registry::call(const entry& e,
                                                    const json_value& section) {
  const auto& s = section.get();
  const auto& pool = pool_settings_schema()["properties"];
  bool has_pool_key = false;
  if (s.is_object())
    for (const auto& [key, value] : pool.items())
      has_pool_key = has_pool_key || s.contains(key);
  if (!has_pool_key)
    return e.factory(section);
  json settings = s;
  for (const auto& [key, value] : pool.items())
    settings.erase(key);
  return e.factory(json_value{std::move(settings)});
}

std::vector<std::string> tool_registry::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& entry : entries_)
    out.push_back(entry.first);
  return out;
}

expected<std::unique_ptr<tool>>
tool_registry::create(const std::string& name,
                      const json_value& settings) const {
  auto i = entries_.find(name);
  if (i == entries_.end()) {
    std::string known;
    for (const auto& entry : entries_) {
      if (!known.empty())
        known += ", ";
      known += entry.first;
    }
    return make_error(errc::tool_not_found,
                      "tool '" + name + "' is not registered (known: "
                        + (known.empty() ? std::string{"none"} : known) + ")");
  }
  if (i->second.factory == nullptr)
    return make_error(errc::internal,
                      "tool '" + name + "' was registered without a factory");
  if (auto ok = check(name, i->second, settings.get()); !ok)
    return std::move(ok.error());
  auto result = call(i->second, settings);
  if (result && *result == nullptr)
    return make_error(errc::internal,
                      "the factory of tool '" + name + "' returned no tool");
  return result;
}

} // namespace cadre::tools
