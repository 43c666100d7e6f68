// validate: checks {"instance"} against the JSON Schema {"schema"} (draft
// 4, 6 or 7) and returns {"valid", "errors"} with every failure, each with
// its instance pointer, keyword and schema pointer.

#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "cadre/lang/json_schema.hpp"
#include "cadre/tools/tool.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools {

namespace {

/// Settings of the validate tool (`tools.validate`).
struct validate_options {
  /// Directory that serves remote $refs: "http://host/a/b.json" reads
  /// "<remotes_dir>/a/b.json". Empty: remote refs (other than the drafts'
  /// meta-schemas) are an error. Default: ""
  std::string remotes_dir;
  /// Compiled schemas kept, least recently used dropped first; 0 disables
  /// the cache. Default: 64
  uint64_t cache_size = 64;
  /// Most errors returned by one call; the rest are counted. Default: 1000
  uint64_t max_errors = 1000;
};

/// A bounded LRU map from schema text (plus draft) to its compiled form,
/// since workflows validate many instances against one schema.
class schema_cache {
public:
  explicit schema_cache(size_t capacity) : capacity_(capacity) {
  }

  const json_schema* find(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end())
      return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  void add(std::string key, json_schema schema) {
    if (capacity_ == 0)
      return;
    if (index_.size() >= capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(std::move(key), std::move(schema));
    index_.emplace(order_.front().first, order_.begin());
  }

  size_t size() const {
    return index_.size();
  }

private:
  using entry = std::pair<std::string, json_schema>;
  size_t capacity_;
  std::list<entry> order_;
  std::unordered_map<std::string, std::list<entry>::iterator> index_;
};

class validate_tool final : public tool {
public:
  explicit validate_tool(validate_options opts)
    : opts_(std::move(opts)), cache_(opts_.cache_size) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return "validate";
  }

  tool_description describe() const override {
    json error_schema = {
      {"type", "object"},
      {"properties",
       {{"pointer",
         {{"type", "string"},
          {"description", "JSON pointer to the failing part of the instance "
                          "(\"\" is the whole instance)."}}},
        {"keyword",
         {{"type", "string"},
          {"description", "Schema keyword that failed, e.g. \"required\", "
                          "\"type\", \"maximum\"."}}},
        {"schema_pointer",
         {{"type", "string"},
          {"description", "JSON pointer to that keyword in the schema."}}},
        {"message", {{"type", "string"}}}}},
      {"required", {"pointer", "keyword", "schema_pointer", "message"}},
    };
    return {
      "validate",
      "Checks a JSON value (instance) against a JSON Schema (draft 4, 6 or "
      "7) and lists every way it fails, each with a JSON pointer into the "
      "instance, the failing keyword and where that keyword is in the "
      "schema. Use it to check data (e.g. fields extracted from a "
      "document) before storing or acting on it. Local $refs resolve; "
      "remote $refs do not. String formats are not checked except date, "
      "time and date-time.",
      json{
        {"type", "object"},
        {"properties",
         {{"schema",
           {{"type", {"object", "boolean"}},
            {"description", "The JSON Schema."}}},
          {"instance", {{"description", "The value to check; any JSON."}}},
          {"draft",
           {{"enum", {4, 6, 7}},
            {"description", "JSON Schema draft. Default: from the schema's "
                            "\"$schema\", else 7."}}}}},
        {"required", {"schema", "instance"}},
        {"additionalProperties", false},
      },
      json{
        {"type", "object"},
        {"properties",
         {{"valid", {{"type", "boolean"}}},
          {"errors", {{"type", "array"}, {"items", error_schema}}},
          {"truncated",
           {{"type", "integer"},
            {"description", "Errors left out beyond the limit "
                            "(tools.validate.max_errors); absent when "
                            "none."}}}}},
        {"required", {"valid", "errors"}},
      },
    };
  }

  // Checks its input against a schema: reads only.
  bool side_effects() const override {
    return false;
  }

  bool blocking() const override {
    // Big instances or schemas with heavy patterns take real CPU time.
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context&) override {
    // The input schema says the shape; whether /schema is a usable JSON
    // Schema is for the compiler to say.
    if (auto ok = detail::check_input("validate", input_schema_, *input); !ok)
      return std::move(ok.error());
    auto schema = input->find("schema");
    auto instance = input->find("instance");
    schema_options opts;
    opts.remotes_dir = opts_.remotes_dir;
    if (auto d = input->find("draft"); d != input->end())
      opts.draft = static_cast<int>(*detail::as_uint(*d));
    auto key = std::to_string(opts.draft) + dump_json(*schema);
    const json_schema* compiled = cache_.find(key);
    json_schema fresh;
    if (!compiled) {
      std::string at;
      auto c = json_schema::compile(*schema, opts, &at);
      if (!c) {
        auto what = message_of(c.error());
        if (what.find("remote $ref") != std::string::npos
            && opts_.remotes_dir.empty())
          what += " (set tools.validate.remotes_dir to serve them from a "
                  "directory)";
        return detail::input_error("validate", "/schema" + at, what);
      }
      fresh = std::move(*c);
      cache_.add(key, fresh);
      compiled = &fresh;
    }
    auto errors = compiled->validate(*instance);
    json list = json::array();
    for (const auto& e : errors) {
      if (list.size() >= opts_.max_errors)
        break;
      list.push_back({{"pointer", e.pointer},
                      {"keyword", e.keyword},
                      {"schema_pointer", e.schema_pointer},
                      {"message", e.message}});
    }
    json out = {{"valid", errors.empty()}, {"errors", std::move(list)}};
    if (errors.size() > opts_.max_errors)
      out["truncated"] = errors.size() - opts_.max_errors;
    return json_value{std::move(out)};
  }

private:
  validate_options opts_;
  schema_cache cache_;
  json_schema input_schema_;
};

} // namespace

json validate_settings_schema() {
  validate_options defaults;
  return detail::settings_schema(
    {{"remotes_dir",
      detail::string_setting("Directory that serves remote $refs: "
                             "http://host/a/b.json reads <remotes_dir>/a/"
                             "b.json.",
                             false)},
     {"cache_size", detail::integer_setting(defaults.cache_size, 0, 100'000,
                                            "Compiled schemas kept; 0 "
                                            "disables the cache.")},
     {"max_errors", detail::integer_setting(defaults.max_errors, 1,
                                            "Most errors one call "
                                            "returns.")}});
}

expected<std::unique_ptr<tool>>
make_validate_tool(const json_value& settings) {
  validate_options opts;
  opts.remotes_dir = detail::setting(*settings, "remotes_dir",
                                     opts.remotes_dir);
  opts.cache_size = detail::setting(*settings, "cache_size", opts.cache_size);
  opts.max_errors = detail::setting(*settings, "max_errors", opts.max_errors);
  auto t = std::make_unique<validate_tool>(opts);
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
