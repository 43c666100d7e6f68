// JSON Schema on valijson: compiling with a meta-schema check and offline
// $ref resolution, and turning valijson's results into errors that name the
// instance pointer, the failing keyword and where it sits in the schema.

// Without this valijson prints and aborts on a schema it cannot read.
#define VALIJSON_USE_EXCEPTIONS 1

#include "cadre/lang/json_schema.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "json_schema/linear_regex.hpp"
#include "json_schema/meta_schemas.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools {

struct json_schema::impl {
  /// The schema as given to valijson ("$id" read as "id", refs local or
  /// absolute); pointers into it are pointers into the original.
  json doc;
  int draft = 7;
  valijson::Schema compiled;
  /// "$id"/"id" (as written and resolved) -> pointer, for locating errors.
  std::unordered_map<std::string, std::string> ids;
  /// Every `pattern` and `patternProperties` key of the schema (and of the
  /// remote documents it refers to), compiled with RE2.
  detail::pattern_table patterns;
};

// -- regular expressions (linear_regex.hpp) ---------------------------------

namespace detail {

namespace {

thread_local const pattern_table* patterns_now = nullptr;

} // namespace

patterns_in_use::patterns_in_use(const pattern_table& table)
  : previous_(patterns_now) {
  patterns_now = &table;
}

patterns_in_use::~patterns_in_use() {
  patterns_now = previous_;
}

bool pattern_search(const std::string& pattern, const std::string& text) {
  if (patterns_now)
    if (auto it = patterns_now->find(pattern); it != patterns_now->end())
      return it->second.search(text);
  auto re = regex::compile(pattern);
  return re && re->search(text);
}

bool check_pattern(const std::string& pattern, const std::string& text,
                   valijson::ValidationResults* results,
                   const std::vector<std::string>& context) {
  if (pattern_search(pattern, text))
    return true;
  if (results)
    results->pushError(context, "Failed to match regex specified by "
                                "'pattern' constraint.");
  return false;
}

bool check_format(const std::string& format, const std::string& text,
                  valijson::ValidationResults* results,
                  const std::vector<std::string>& context) {
  // valijson's expressions; a match fixes where month and day are.
  static const auto date = *regex::compile(
    "^([0-9]+)-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])$");
  static const auto time = *regex::compile(
    "^([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)(\\.[0-9]+)?(([Zz])|"
    "([\\+|\\-]([01][0-9]|2[0-3]):[0-5][0-9]))$");
  static const auto date_time = *regex::compile(
    "^([0-9]+)-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3])"
    ":([0-5][0-9]):([0-5][0-9]|60)(\\.[0-9]+)?(([Zz])|([\\+|\\-]([01][0-9]|"
    "2[0-3]):[0-5][0-9]))$");
  auto fail = [&](const std::string& what) {
    if (results)
      results->pushError(context, "String should be a valid " + what);
    return false;
  };
  // valijson's day check, and its message, for both dates and date-times.
  auto day_in_month = [&](size_t month_at) {
    auto digits = [&](size_t at) {
      return (text[at] - '0') * 10 + (text[at + 1] - '0');
    };
    int month = digits(month_at);
    int day = digits(month_at + 3);
    int limit = month == 2 ? 29 : (month <= 7) == (month % 2 == 1) ? 31 : 30;
    return day <= limit || fail("date-time");
  };
  if (format == "date")
    return date.search(text) ? day_in_month(text.size() - 5) : fail(format);
  if (format == "time")
    return time.search(text) || fail(format);
  if (format == "date-time")
    return date_time.search(text)
             ? day_in_month(text.find_first_of("Tt") - 5)
             : fail(format);
  return true;
}

} // namespace detail

namespace {

using adapter = valijson::adapters::NlohmannJsonAdapter;

// -- helpers ----------------------------------------------------------------

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::string child(const std::string& pointer, const std::string& token) {
  return pointer + (json::json_pointer{} / token).to_string();
}

std::string type_name(const json& x) {
  if (x.is_number_integer() || x.is_number_unsigned())
    return "integer";
  if (x.is_number_float())
    return "number";
  return x.type_name();
}

/// Strips "#" and a trailing "#" so "http://x/s#" and "http://x/s" match.
std::string without_empty_fragment(std::string uri) {
  if (!uri.empty() && uri.back() == '#')
    uri.pop_back();
  return uri;
}

/// The base of `uri` for resolving relative references: up to and
/// including the last '/', without a fragment.
std::string base_dir(const std::string& uri) {
  auto no_frag = uri.substr(0, uri.find('#'));
  auto slash = no_frag.rfind('/');
  return slash == std::string::npos ? std::string{}
                                    : no_frag.substr(0, slash + 1);
}

bool is_absolute_uri(const std::string& uri) {
  return uri.find("://") != std::string::npos || starts_with(uri, "urn:");
}

std::string resolve_uri(const std::string& base, const std::string& ref) {
  if (ref.empty() || is_absolute_uri(ref))
    return ref;
  if (ref.front() == '#')
    return base.substr(0, base.find('#')) + ref;
  return base_dir(base) + ref;
}

/// Undoes %-escapes in a URI fragment ("#/definitions/a%25b").
std::string percent_decode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()
        && std::isxdigit(static_cast<unsigned char>(text[i + 1]))
        && std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

const char* meta_text(int draft) {
  switch (draft) {
    case 4:
      return detail::draft4_meta_schema;
    case 6:
      return detail::draft6_meta_schema;
    default:
      return detail::draft7_meta_schema;
  }
}

/// The meta-schema draft a URI names, or 0.
int meta_schema_draft(const std::string& uri) {
  auto u = without_empty_fragment(uri);
  if (starts_with(u, "https://"))
    u = "http://" + u.substr(8);
  if (u == "http://json-schema.org/draft-04/schema")
    return 4;
  if (u == "http://json-schema.org/draft-06/schema")
    return 6;
  if (u == "http://json-schema.org/draft-07/schema")
    return 7;
  return 0;
}

valijson::SchemaParser::Version parser_version(int draft) {
  // valijson knows drafts 4 and 7; draft 6 is a subset of 7 for everything
  // valijson implements.
  return draft == 4 ? valijson::SchemaParser::kDraft4
                    : valijson::SchemaParser::kDraft7;
}

/// Calls `f(subschema, pointer)` for each direct subschema of `schema`,
/// by keyword, so property names and enum values are never taken for
/// schemas.
template <class Schema, class F>
void for_each_subschema(Schema& schema, const std::string& pointer, F f) {
  if (!schema.is_object())
    return;
  static const std::set<std::string> maps = {
    "properties", "patternProperties", "definitions", "dependencies"};
  static const std::set<std::string> lists = {"allOf", "anyOf", "oneOf",
                                              "items"};
  static const std::set<std::string> singles = {
    "additionalProperties", "additionalItems", "items", "not", "if",
    "then", "else", "contains", "propertyNames"};
  for (auto& [key, value] : schema.items()) {
    auto at = child(pointer, key);
    if (maps.count(key) && value.is_object()) {
      for (auto& [name, sub] : value.items())
        if (sub.is_object() || sub.is_boolean())
          f(sub, child(at, name));
    } else if (lists.count(key) && value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i)
        f(value[i], child(at, std::to_string(i)));
    } else if (singles.count(key)) {
      f(value, at);
    }
  }
}

/// Records "$id" (drafts 6, 7) or "id" (draft 4) of every subschema.
void collect_ids(const json& node, const std::string& pointer,
                 const std::string& base, int draft,
                 std::unordered_map<std::string, std::string>& out) {
  if (!node.is_object())
    return;
  auto scope = base;
  auto id = node.find(draft == 4 ? "id" : "$id");
  if (id != node.end() && id->is_string()) {
    const auto& text = id->get_ref<const std::string&>();
    scope = resolve_uri(base, text);
    out.emplace(without_empty_fragment(text), pointer);
    out.emplace(without_empty_fragment(scope), pointer);
  }
  for_each_subschema(node, pointer,
                     [&](const json& sub, const std::string& at) {
                       collect_ids(sub, at, scope, draft, out);
                     });
}

/// Prepares a schema document for valijson, which reads only "id",
/// resolves relative refs by plain concatenation and finds ids only in
/// documents it fetches: renames "$id" to "id" (drafts 6, 7), makes
/// relative $refs absolute against their scope, and turns refs to an id of
/// this document into local "#/pointer" refs.
void prepare(json& node, const std::string& base, int draft,
             const std::unordered_map<std::string, std::string>& ids) {
  if (!node.is_object())
    return;
  if (draft != 4)
    if (auto it = node.find("$id");
        it != node.end() && !node.contains("id")) {
      json id = *it;
      node.erase("$id");
      node["id"] = std::move(id);
    }
  auto scope = base;
  if (auto id = node.find("id"); id != node.end() && id->is_string())
    scope = resolve_uri(base, id->get<std::string>());
  if (auto ref = node.find("$ref"); ref != node.end() && ref->is_string()) {
    auto text = ref->get<std::string>();
    if (!text.empty() && text.front() != '#') {
      if (!scope.empty() && !is_absolute_uri(text))
        text = resolve_uri(scope, text);
      auto hash = text.find('#');
      auto doc = text.substr(0, hash);
      auto frag = hash == std::string::npos ? std::string{}
                                            : text.substr(hash + 1);
      if (auto it = ids.find(doc);
          it != ids.end() && (frag.empty() || frag.front() == '/'))
        text = "#" + it->second + frag;
      *ref = text;
    }
  }
  for_each_subschema(node, "", [&](json& sub, const std::string&) {
    prepare(sub, scope, draft, ids);
  });
}

// -- valijson results -> schema_error ---------------------------------------

/// valijson's context ("<root>", "[name]", "[0]") as a JSON pointer.
std::string pointer_of(const std::vector<std::string>& context) {
  std::string out;
  for (const auto& part : context) {
    if (part == "<root>")
      continue;
    auto token = part;
    if (token.size() >= 2 && token.front() == '[' && token.back() == ']')
      token = token.substr(1, token.size() - 2);
    out = child(out, token);
  }
  return out;
}

/// What a valijson message says, by the start of its text.
struct message_kind {
  std::string_view prefix;
  /// Candidate keywords, the first found in the schema wins.
  std::vector<std::string_view> keywords;
  /// Only says that something below failed; dropped when a failure at or
  /// below its place is reported too.
  bool summary = false;
  /// The summary is about a child: its place is context + "/<n>".
  bool names_item = false;
};

const std::vector<message_kind>& message_kinds() {
  static const std::vector<message_kind> kinds = {
    {"Failed to validate against any schemas allowed by anyOf", {"anyOf"}},
    {"Failed to validate against a conditional schema", {"if"}, true},
    {"Failed to match expected value set by 'const'", {"const"}},
    {"Failed to any values against subschema in 'contains'", {"contains"}},
    {"Failed to match against any enum values", {"enum"}},
    {"Target value and comparison value are not equal", {"enum"}},
    {"String should be a valid", {"format"}},
    {"Array contains more items than allowed", {"additionalItems"}},
    {"Cannot validate item #", {"additionalItems"}},
    {"Failed to validate item #", {"additionalItems"}, true, true},
    {"Expected number less than or equal to", {"maximum"}},
    {"Expected number less than", {"exclusiveMaximum", "maximum"}},
    {"Expected number greater than or equal to", {"minimum"}},
    {"Expected number greater than", {"exclusiveMinimum", "minimum"}},
    {"Array should contain no more than", {"maxItems"}},
    {"Array should contain no fewer than", {"minItems"}},
    {"String should be no more than", {"maxLength"}},
    {"String should be no fewer than", {"minLength"}},
    {"Object should have no more than", {"maxProperties"}},
    {"Object should have no fewer than", {"minProperties"}},
    {"Value should be a multiple of", {"multipleOf"}},
    {"Value could not be converted", {"multipleOf"}},
    {"Target should not validate against schema specified in 'not'",
     {"not"}},
    {"Failed to validate against any child schemas allowed by oneOf",
     {"oneOf"}},
    {"Failed to validate against exactly one child schema", {"oneOf"}},
    {"Failed to validate against child schema #", {"oneOf"}, true},
    {"Failed to match regex specified by 'pattern'", {"pattern"}},
    {"Object contains a property that could not be validated",
     {"additionalProperties"}},
    {"Failed to validate against additional properties schema",
     {"additionalProperties"}, true},
    {"Value type not permitted by 'type'", {"type"}},
    {"Elements at indexes", {"uniqueItems"}},
    {"Missing required property", {"required"}},
    {"Missing dependency", {"dependencies"}},
    {"Failed to validate against schema associated with pattern",
     {"patternProperties"}, true},
    {"Failed to validate against schema associated with property name",
     {"properties"}, true, true},
    {"Failed to validate against dependent schema", {"dependencies"}, true},
  };
  return kinds;
}

const message_kind* kind_of(const std::string& text) {
  // Items come in three shapes that share a prefix: tell them apart first.
  static const message_kind item_of_items{"", {"items"}, true, true};
  static const message_kind own_item{"", {"items"}, true, false};
  if (starts_with(text, "Failed to validate item #")) {
    if (text.find("against corresponding item schema") != std::string::npos)
      return &own_item;
    if (text.find("in array") != std::string::npos)
      return &item_of_items;
  }
  for (const auto& k : message_kinds())
    if (starts_with(text, k.prefix))
      return &k;
  return nullptr;
}

/// The n of "...item #n..." or the name of "...property name 'x'...".
std::string named_child(const std::string& text) {
  if (auto hash = text.find('#'); hash != std::string::npos) {
    auto end = text.find_first_not_of("0123456789", hash + 1);
    return text.substr(hash + 1, end - hash - 1);
  }
  auto open = text.find('\'');
  auto close = text.rfind('\'');
  if (open != std::string::npos && close > open)
    return text.substr(open + 1, close - open - 1);
  return {};
}

bool at_or_below(const std::string& deeper, const std::string& pointer) {
  return deeper.compare(0, pointer.size(), pointer) == 0
         && (deeper.size() == pointer.size() || deeper[pointer.size()] == '/');
}

/// Finds the subschemas of a compiled schema that apply at one place of an
/// instance, following local $refs.
class locator {
public:
  locator(const json_schema::impl& s, const json& instance)
    : s_(s), instance_(instance) {
  }

  std::vector<std::string> at(const std::string& pointer) {
    tokens_.clear();
    auto ptr = json::json_pointer{pointer};
    // json_pointer has no public token list; rebuild it from the back.
    while (!ptr.empty()) {
      tokens_.insert(tokens_.begin(), ptr.back());
      ptr.pop_back();
    }
    out_.clear();
    visit(s_.doc, "", instance_, 0, 0);
    return out_;
  }

  const json* node(const std::string& pointer) const {
    auto ptr = json::json_pointer{pointer};
    return s_.doc.contains(ptr) ? &s_.doc.at(ptr) : nullptr;
  }

  /// The pointer a $ref leads to, when it is inside this document.
  std::optional<std::string> resolve(const std::string& ref) const {
    if (ref == "#" || starts_with(ref, "#/"))
      return percent_decode(ref.substr(1));
    auto hash = ref.find('#');
    auto base = ref.substr(0, hash);
    auto frag = hash == std::string::npos ? std::string{}
                                          : ref.substr(hash + 1);
    if (auto it = s_.ids.find(without_empty_fragment(ref));
        it != s_.ids.end())
      return it->second;
    if (!base.empty())
      if (auto it = s_.ids.find(base); it != s_.ids.end()
                                       && (frag.empty() || frag[0] == '/'))
        return it->second + percent_decode(frag);
    return std::nullopt;
  }

private:
  void visit(const json& schema, const std::string& ptr, const json& value,
             size_t idx, int depth) {
    if (depth > 64)
      return;
    if (!schema.is_object()) {
      if (idx == tokens_.size())
        out_.push_back(ptr);
      return;
    }
    if (auto ref = schema.find("$ref"); ref != schema.end()
                                        && ref->is_string()) {
      // Up to draft 7 a $ref replaces its siblings.
      auto target = resolve(ref->get<std::string>());
      if (target)
        if (const json* n = node(*target))
          return visit(*n, *target, value, idx, depth + 1);
      if (idx == tokens_.size())
        out_.push_back(ptr);
      return;
    }
    if (idx == tokens_.size())
      out_.push_back(ptr);
    for (auto key : {"allOf", "anyOf", "oneOf"})
      if (auto it = schema.find(key); it != schema.end() && it->is_array())
        for (size_t i = 0; i < it->size(); ++i)
          visit((*it)[i], child(child(ptr, key), std::to_string(i)), value,
                idx, depth + 1);
    for (auto key : {"not", "if", "then", "else"})
      if (auto it = schema.find(key); it != schema.end())
        visit(*it, child(ptr, key), value, idx, depth + 1);
    if (auto it = schema.find("dependencies");
        it != schema.end() && it->is_object())
      for (const auto& [name, dep] : it->items())
        if (!dep.is_array())
          visit(dep, child(child(ptr, "dependencies"), name), value, idx,
                depth + 1);
    if (idx == tokens_.size())
      return;
    const auto& token = tokens_[idx];
    if (value.is_object() && value.contains(token)) {
      const json& next = value.at(token);
      bool matched = false;
      if (auto it = schema.find("properties");
          it != schema.end() && it->is_object() && it->contains(token)) {
        matched = true;
        visit(it->at(token), child(child(ptr, "properties"), token), next,
              idx + 1, depth + 1);
      }
      if (auto it = schema.find("patternProperties");
          it != schema.end() && it->is_object())
        for (const auto& [pattern, sub] : it->items())
          if (matches(pattern, token)) {
            matched = true;
            visit(sub, child(child(ptr, "patternProperties"), pattern), next,
                  idx + 1, depth + 1);
          }
      if (auto it = schema.find("additionalProperties");
          !matched && it != schema.end())
        visit(*it, child(ptr, "additionalProperties"), next, idx + 1,
              depth + 1);
    } else if (value.is_array()) {
      size_t i = 0;
      try {
        i = std::stoul(token);
      } catch (const std::exception&) {
        return;
      }
      if (i >= value.size())
        return;
      const json& next = value[i];
      if (auto it = schema.find("items"); it != schema.end()) {
        if (!it->is_array())
          visit(*it, child(ptr, "items"), next, idx + 1, depth + 1);
        else if (i < it->size())
          visit((*it)[i], child(child(ptr, "items"), token), next, idx + 1,
                depth + 1);
        else if (auto add = schema.find("additionalItems");
                 add != schema.end())
          visit(*add, child(ptr, "additionalItems"), next, idx + 1,
                depth + 1);
      }
      if (auto it = schema.find("contains"); it != schema.end())
        visit(*it, child(ptr, "contains"), next, idx + 1, depth + 1);
    }
  }

  bool matches(const std::string& pattern, const std::string& text) const {
    if (auto it = s_.patterns.find(pattern); it != s_.patterns.end())
      return it->second.search(text);
    return false;
  }

  const json_schema::impl& s_;
  const json& instance_;
  std::vector<std::string> tokens_;
  std::vector<std::string> out_;
};

/// Keywords that change how `keyword` judges, so a check of one keyword
/// alone needs them too.
std::vector<std::string> partners(const std::string& keyword) {
  if (keyword == "maximum")
    return {"exclusiveMaximum"};
  if (keyword == "minimum")
    return {"exclusiveMinimum"};
  if (keyword == "additionalItems")
    return {"items"};
  if (keyword == "additionalProperties")
    return {"properties", "patternProperties"};
  return {};
}

bool has_subschemas(const std::string& keyword) {
  static const std::set<std::string> applicators = {
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "items",
    "additionalItems", "contains", "properties", "patternProperties",
    "additionalProperties", "dependencies", "propertyNames"};
  return applicators.count(keyword) > 0;
}

/// The same number text valijson would print, from the schema instead.
std::string number_text(const json& x) {
  return x.is_number() ? dump_json(x) : std::string{"?"};
}

std::string nicer_message(const std::string& keyword, const json* schema,
                          const json& value, std::string text) {
  if (!text.empty() && text.back() == '.')
    text.pop_back();
  if (keyword == "type") {
    text = "Value type not permitted by 'type' constraint";
    if (schema && schema->is_object() && schema->contains("type")) {
      const json& t = schema->at("type");
      std::string want;
      if (t.is_string()) {
        want = t.get<std::string>();
      } else if (t.is_array()) {
        for (const auto& x : t)
          if (x.is_string())
            want += (want.empty() ? "" : " or ") + x.get<std::string>();
      }
      if (!want.empty())
        text += ": expected " + want;
    }
    return text + " (got " + type_name(value) + ")";
  }
  if (!schema || !schema->is_object() || !schema->contains(keyword))
    return text;
  const json& limit = schema->at(keyword);
  if ((keyword == "maximum" || keyword == "exclusiveMaximum"
       || keyword == "minimum" || keyword == "exclusiveMinimum"
       || keyword == "multipleOf")
      && limit.is_number()) {
    // valijson prints limits with std::to_string ("10.000000").
    auto digits = text.find_last_not_of("0123456789.-+e");
    return text.substr(0, digits + 1) + number_text(limit) + " (got "
           + dump_json(value) + ")";
  }
  if (keyword == "enum")
    return "Value is not one of " + dump_json(limit);
  if (keyword == "const")
    return "Value must be " + dump_json(limit);
  if (keyword == "pattern" && limit.is_string())
    return "String does not match the pattern " + dump_json(limit);
  return text;
}

// -- compiling --------------------------------------------------------------

struct fetch_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Reads a remote schema: the drafts' meta-schemas from memory, others
/// from `remotes_dir` (URI path below it); never from the network.
json* fetch(const std::string& uri, const std::string& remotes_dir,
            int draft) {
  if (int d = meta_schema_draft(uri))
    return new json(json::parse(meta_text(d)));
  auto scheme = uri.find("://");
  if (remotes_dir.empty() || scheme == std::string::npos)
    throw fetch_failure{"remote $ref '" + uri
                        + "' is not available: remote schemas are not "
                          "fetched over the network and no remotes "
                          "directory is set"};
  auto slash = uri.find('/', scheme + 3);
  auto rel = slash == std::string::npos ? std::string{} : uri.substr(slash);
  namespace fs = std::filesystem;
  std::error_code ec;
  auto root = fs::weakly_canonical(remotes_dir, ec);
  auto path = fs::weakly_canonical(fs::path{remotes_dir} / rel.substr(1), ec);
  auto r = root.string();
  if (ec || !at_or_below(path.string(), r))
    throw fetch_failure{"remote $ref '" + uri + "' leaves the remotes "
                        "directory"};
  std::ifstream in{path};
  if (!in)
    throw fetch_failure{"remote $ref '" + uri + "': cannot read "
                        + path.string()};
  std::stringstream text;
  text << in.rdbuf();
  auto doc = try_parse_json(text.str());
  if (doc.is_discarded())
    throw fetch_failure{"remote $ref '" + uri + "': " + path.string()
                        + " is not JSON"};
  std::unordered_map<std::string, std::string> ids;
  auto base = uri.substr(0, uri.find('#'));
  collect_ids(doc, "", base, draft, ids);
  prepare(doc, base, draft, ids);
  return new json(std::move(doc));
}

/// A `pattern` or `patternProperties` key that RE2 refuses, a $ref cycle,
/// or a URI that valijson cannot read safely.
struct pattern_failure : std::runtime_error {
  pattern_failure(std::string at, const std::string& what)
    : std::runtime_error(what), pointer(std::move(at)) {
  }
  std::string pointer;
};

// valijson's parser matches the URI part of ids and refs with std::regex,
// which recurses once per character: longer ones are refused.
constexpr size_t max_uri_size = 2048;

/// Compiles every `pattern` and `patternProperties` key of `node` and its
/// subschemas into `out`, and checks the size of ids and refs. Throws
/// pattern_failure naming the first refused.
void compile_patterns(const json& node, const std::string& pointer,
                      detail::pattern_table& out) {
  if (!node.is_object())
    return;
  for (auto key : {"$ref", "$id", "id"}) {
    auto it = node.find(key);
    if (it == node.end() || !it->is_string())
      continue;
    const auto& uri = it->get_ref<const std::string&>();
    if (std::min(uri.find('#'), uri.size()) > max_uri_size)
      throw pattern_failure{child(pointer, key),
                            "the URI is longer than "
                              + std::to_string(max_uri_size) + " bytes"};
  }
  auto add = [&](const std::string& text, const std::string& at) {
    if (out.count(text))
      return;
    auto re = regex::compile(text);
    if (!re)
      throw pattern_failure{at, "pattern "
                                  + json(text).dump(
                                    -1, ' ', false,
                                    json::error_handler_t::replace)
                                  + ": " + message_of(re.error())};
    out.emplace(text, std::move(*re));
  };
  if (auto p = node.find("pattern"); p != node.end() && p->is_string())
    add(p->get<std::string>(), child(pointer, "pattern"));
  if (auto pp = node.find("patternProperties");
      pp != node.end() && pp->is_object())
    for (const auto& [name, sub] : pp->items()) {
      (void) sub;
      add(name, child(child(pointer, "patternProperties"), name));
    }
  for_each_subschema(node, pointer,
                     [&](const json& sub, const std::string& at) {
                       compile_patterns(sub, at, out);
                     });
}

/// A schema node of the root document ("" uri) or of a remote one, as
/// "<uri>#<pointer>" (a document's URI holds no '#').
std::string node_key(const std::string& uri, const std::string& pointer) {
  return uri + "#" + pointer;
}

std::pair<std::string, std::string> split_key(const std::string& key) {
  auto hash = key.find('#');
  return {key.substr(0, hash), key.substr(hash + 1)};
}

/// Remote documents by URI (without fragment), as fetched and prepared.
using remote_docs = std::map<std::string, json>;

/// The subschemas that apply at the same place of the instance as `node`
/// (of document `uri`, at `pointer`), each with the key of the $ref that
/// leads there ("" for allOf and the like): the steps a validator takes
/// without moving on in the instance. A ref to a remote document in
/// `remotes` is followed into it.
std::vector<std::pair<std::string, std::string>>
in_place_steps(const json& doc, const std::string& uri, const json& node,
               const std::string& pointer, const remote_docs& remotes) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!node.is_object())
    return out;
  if (auto ref = node.find("$ref"); ref != node.end() && ref->is_string()) {
    // Up to draft 7 a $ref replaces its siblings. Refs to other documents
    // were made absolute by prepare.
    const auto& text = ref->get_ref<const std::string&>();
    auto hash = text.find('#');
    auto target_uri = hash == 0 ? uri : text.substr(0, hash);
    auto frag = hash == std::string::npos ? std::string{}
                                          : text.substr(hash + 1);
    const json* target_doc = &doc;
    if (target_uri != uri) {
      auto it = remotes.find(target_uri);
      if (it == remotes.end())
        return out; // not fetched: valijson reports it if it is used
      target_doc = &it->second;
    }
    auto target = percent_decode(frag);
    try {
      if (target_doc->contains(json::json_pointer{target}))
        out.emplace_back(node_key(target_uri, target),
                         node_key(uri, child(pointer, "$ref")));
    } catch (const json::exception&) {
      // Not a JSON pointer: valijson reports the ref.
    }
    return out;
  }
  auto step = [&](const std::string& at) {
    out.emplace_back(node_key(uri, at), "");
  };
  for (auto key : {"allOf", "anyOf", "oneOf"})
    if (auto it = node.find(key); it != node.end() && it->is_array())
      for (size_t i = 0; i < it->size(); ++i)
        step(child(child(pointer, key), std::to_string(i)));
  for (auto key : {"not", "if", "then", "else"})
    if (node.contains(key))
      step(child(pointer, key));
  if (auto it = node.find("dependencies");
      it != node.end() && it->is_object())
    for (const auto& [name, dep] : it->items())
      if (!dep.is_array())
        step(child(child(pointer, "dependencies"), name));
  return out;
}

void collect_schema_pointers(const json& node, const std::string& pointer,
                             std::vector<std::string>& out) {
  out.push_back(pointer);
  for_each_subschema(node, pointer,
                     [&](const json& sub, const std::string& at) {
                       collect_schema_pointers(sub, at, out);
                     });
}

/// Refuses a $ref that valijson would read as this document's root
/// without one being meant (a relative URI with no base), and a $ref cycle
/// that never moves on in the instance, such as {"$ref": "#"}, a ref to an
/// allOf that holds it, or refs that go round through remote documents:
/// valijson would follow it until the stack overflows. Throws
/// pattern_failure naming the $ref that closes the cycle (in a remote
/// document: located at the root's $ref that leads there). (Refs through
/// properties, items and the like are fine: each step goes one level down
/// the instance.)
void check_ref_cycles(const json& root, const remote_docs& remotes) {
  std::vector<std::string> nodes;
  {
    std::vector<std::string> pointers;
    collect_schema_pointers(root, "", pointers);
    for (auto& p : pointers)
      nodes.push_back(node_key("", p));
    for (const auto& [uri, doc] : remotes) {
      pointers.clear();
      collect_schema_pointers(doc, "", pointers);
      for (auto& p : pointers)
        nodes.push_back(node_key(uri, p));
    }
  }
  auto doc_of = [&](const std::string& uri) -> const json& {
    return uri.empty() ? root : remotes.at(uri);
  };
  auto node_at = [&](const std::string& key) -> const json& {
    auto [uri, pointer] = split_key(key);
    return doc_of(uri).at(json::json_pointer{pointer});
  };
  auto steps_of = [&](const std::string& key) {
    auto [uri, pointer] = split_key(key);
    return in_place_steps(doc_of(uri), uri, node_at(key), pointer, remotes);
  };
  enum class mark { open, done };
  std::unordered_map<std::string, mark> marks;
  struct frame {
    std::string key;
    std::string via_ref; ///< the key of the $ref that led here ("" if none)
    std::vector<std::pair<std::string, std::string>> steps;
    size_t next = 0;
  };
  // valijson reads a $ref that is neither "#..." nor absolute by its own
  // test ("://" or a URN) as a pointer into this document, to the root when
  // it has no '#': "", "a.json" or "http:/a" with no $id as its base would
  // recurse for ever.
  std::vector<std::string> root_pointers;
  collect_schema_pointers(root, "", root_pointers);
  for (const auto& p : root_pointers) {
    const auto& node = root.at(json::json_pointer{p});
    auto ref = node.find("$ref");
    if (ref == node.end() || !ref->is_string())
      continue;
    const auto& text = ref->get_ref<const std::string&>();
    if (!text.empty() && text.front() == '#')
      continue;
    namespace vj = valijson::internal;
    auto uri = vj::json_reference::getJsonReferenceUri(text);
    if (!text.empty() && uri
        && (vj::uri::isUriAbsolute(*uri) || vj::uri::isUrn(*uri)))
      continue;
    throw pattern_failure{child(p, "$ref"),
                          "$ref " + dump_json(*ref)
                            + " is neither a pointer into this schema "
                              "(#...) nor an absolute URI, and no $id "
                              "gives it a base"};
  }
  // Depth-first, with an explicit stack: a chain of refs can be long.
  for (const auto& start : nodes) {
    if (marks.count(start))
      continue;
    std::vector<frame> stack;
    stack.push_back({start, "", steps_of(start)});
    marks[start] = mark::open;
    while (!stack.empty()) {
      auto& top = stack.back();
      if (top.next == top.steps.size()) {
        marks[top.key] = mark::done;
        stack.pop_back();
        continue;
      }
      auto [target, via] = top.steps[top.next++];
      auto m = marks.find(target);
      if (m == marks.end()) {
        marks[target] = mark::open;
        auto steps = steps_of(target);
        stack.push_back({target, via, std::move(steps)});
        continue;
      }
      if (m->second == mark::done)
        continue;
      // Back to a schema on the stack: name a $ref of the cycle.
      for (auto i = stack.size(); via.empty() && i-- > 0
                                  && stack[i].key != target;)
        via = stack[i].via_ref;
      auto [uri, ref_at] = split_key(via);
      auto ref_node = ref_at.substr(0, ref_at.size() - 5); // less "/$ref"
      const auto& text = doc_of(uri)
                           .at(json::json_pointer{ref_node})
                           .at("$ref");
      std::string what = "$ref " + text.dump()
                         + " leads back to itself without moving on in the "
                           "instance (a cycle)";
      if (uri.empty())
        throw pattern_failure{ref_at, what};
      // In a remote document: locate it at the root's ref that leads in.
      std::string entry;
      for (const auto& f : stack)
        if (!f.via_ref.empty() && split_key(f.via_ref).first.empty())
          entry = split_key(f.via_ref).second;
      throw pattern_failure{entry, "remote $ref '" + uri + "': " + ref_at
                                     + ": " + what};
    }
  }
}

/// Fetches every remote document the schema refers to, directly or through
/// other remote documents, so cycles through them can be found before
/// valijson follows them. One that cannot be fetched is left out: valijson
/// reports it if the schema uses it.
remote_docs prefetch_remotes(const json& root, const std::string& remotes_dir,
                             int draft) {
  remote_docs out;
  std::vector<const json*> todo{&root};
  std::set<std::string> tried;
  while (!todo.empty()) {
    const json* doc = todo.back();
    todo.pop_back();
    std::vector<std::string> pointers;
    collect_schema_pointers(*doc, "", pointers);
    for (const auto& p : pointers) {
      const auto& node = doc->at(json::json_pointer{p});
      if (!node.is_object())
        continue;
      auto ref = node.find("$ref");
      if (ref == node.end() || !ref->is_string())
        continue;
      const auto& text = ref->get_ref<const std::string&>();
      auto uri = text.substr(0, text.find('#'));
      if (uri.empty() || !tried.insert(uri).second)
        continue;
      try {
        std::unique_ptr<json> fetched{fetch(uri, remotes_dir, draft)};
        auto it = out.emplace(uri, std::move(*fetched)).first;
        todo.push_back(&it->second);
      } catch (const std::exception&) {
        // Reported by valijson when it needs the document.
      }
    }
  }
  return out;
}

/// Compiles without the meta-schema check. Throws fetch_failure,
/// pattern_failure, or valijson's exceptions.
std::shared_ptr<json_schema::impl> build(const json& schema, int draft,
                                         const std::string& remotes_dir) {
  auto result = std::make_shared<json_schema::impl>();
  result->draft = draft;
  collect_ids(schema, "", "", draft, result->ids);
  compile_patterns(schema, "", result->patterns);
  // Errors are located in the prepared document, whose refs are local or
  // absolute; its pointers equal those of `schema`.
  result->doc = schema;
  prepare(result->doc, "", draft, result->ids);
  auto remotes = prefetch_remotes(result->doc, remotes_dir, draft);
  check_ref_cycles(result->doc, remotes);
  valijson::SchemaParser parser{parser_version(draft)};
  adapter root{result->doc};
  std::function<const json*(const std::string&)> fetch_doc
    = [&](const std::string& uri) -> const json* {
    auto known = remotes.find(uri);
    std::unique_ptr<json> doc{known != remotes.end()
                                ? new json(known->second)
                                : fetch(uri, remotes_dir, draft)};
    try {
      compile_patterns(*doc, "", result->patterns);
    } catch (const pattern_failure& e) {
      throw fetch_failure{"remote $ref '" + uri + "': " + e.pointer + ": "
                          + e.what()};
    }
    return doc.release();
  };
  std::function<void(const json*)> free_doc = [](const json* doc) {
    delete doc;
  };
  parser.populateSchema(root, result->compiled, fetch_doc, free_doc);
  return result;
}

bool integral_float(const json& x) {
  if (!x.is_number_float())
    return false;
  auto d = x.get<double>();
  return std::isfinite(d) && std::floor(d) == d && d >= -9.2e18 && d <= 1.8e19;
}

bool has_integral_float(const json& x) {
  if (x.is_structured()) {
    for (const auto& v : x)
      if (has_integral_float(v))
        return true;
    return false;
  }
  return integral_float(x);
}

/// `x` with every number that has a zero fractional part as an integer.
void integers_for_floats(json& x) {
  if (x.is_structured()) {
    for (auto& v : x)
      integers_for_floats(v);
  } else if (integral_float(x)) {
    auto d = x.get<double>();
    if (d < 0)
      x = static_cast<int64_t>(d);
    else
      x = static_cast<uint64_t>(d);
  }
}

/// Validates `instance` against a compiled schema with its patterns.
bool check(const json_schema::impl& s, const json& instance,
           valijson::ValidationResults* results) {
  // Drafts 6 and 7 count 2.0 as an integer (Lua and JavaScript produce
  // such numbers); valijson's strict typing does not: validate a copy
  // holding the integers they equal.
  if (s.draft >= 6 && has_integral_float(instance)) {
    json copy = instance;
    integers_for_floats(copy);
    return check(s, copy, results);
  }
  detail::patterns_in_use guard{s.patterns};
  // A validator is a flag and a cache of std::regex that the visitor on
  // RE2 never fills, so one per call costs nothing and needs no lock.
  valijson::Validator validator;
  return validator.validate(s.compiled, adapter{instance}, results);
}

const json_schema::impl& meta_schema(int draft) {
  // Compiled once per process; C++ guarantees thread-safe initialization.
  static const auto d4 = build(json::parse(meta_text(4)), 4, "");
  static const auto d6 = build(json::parse(meta_text(6)), 6, "");
  static const auto d7 = build(json::parse(meta_text(7)), 7, "");
  return draft == 4 ? *d4 : draft == 6 ? *d6 : *d7;
}

std::vector<schema_error> run(const json_schema::impl& s,
                              const json& instance) {
  valijson::ValidationResults results;
  if (check(s, instance, &results))
    return {};
  // The locator matches patternProperties with the schema's patterns.
  detail::patterns_in_use guard{s.patterns};
  struct raw {
    std::string pointer;
    std::string text;
    const message_kind* kind;
    std::string place; // where a summary points at
  };
  std::vector<raw> raws;
  for (const auto& e : results) {
    raw r{pointer_of(e.context), e.description, kind_of(e.description), {}};
    r.place = r.pointer;
    if (r.kind && r.kind->names_item)
      r.place = child(r.pointer, named_child(r.text));
    raws.push_back(std::move(r));
  }
  std::vector<schema_error> out;
  std::set<std::tuple<std::string, std::string, std::string, std::string>>
    seen;
  locator where{s, instance};
  for (size_t i = 0; i < raws.size(); ++i) {
    const auto& r = raws[i];
    if (r.kind && r.kind->summary) {
      bool explained = false;
      for (size_t j = 0; j < raws.size() && !explained; ++j)
        explained = j != i && !(raws[j].kind && raws[j].kind->summary)
                    && at_or_below(raws[j].pointer, r.place);
      if (explained)
        continue;
    }
    schema_error err;
    err.pointer = r.pointer;
    const json* value = &instance;
    if (instance.contains(json::json_pointer{r.pointer}))
      value = &instance.at(json::json_pointer{r.pointer});
    auto places = where.at(r.pointer);
    const json* located = nullptr;
    if (r.kind) {
      for (auto keyword : r.kind->keywords) {
        std::vector<std::string> with;
        for (const auto& p : places) {
          const json* n = where.node(p);
          if (!n || !n->is_object() || !n->contains(std::string{keyword}))
            continue;
          // Draft 4's boolean exclusiveMaximum only modifies maximum.
          if (starts_with(keyword, "exclusive")
              && !n->at(std::string{keyword}).is_number())
            continue;
          with.push_back(p);
        }
        if (with.empty())
          continue;
        err.keyword = keyword;
        auto pick = with.front();
        if (with.size() > 1 && !has_subschemas(err.keyword)) {
          // Several subschemas here use the keyword: take the first that
          // fails on its own.
          for (const auto& p : with) {
            const json& n = *where.node(p);
            json alone = {{err.keyword, n.at(err.keyword)}};
            for (const auto& partner : partners(err.keyword))
              if (n.contains(partner))
                alone[partner] = n.at(partner);
            try {
              auto one = build(alone, s.draft, "");
              if (!check(*one, *value, nullptr)) {
                pick = p;
                break;
              }
            } catch (const std::exception&) {
              // keep the first
            }
          }
        }
        located = where.node(pick);
        err.schema_pointer = child(pick, err.keyword);
        break;
      }
      if (err.keyword.empty()) {
        err.keyword = r.kind->keywords.front();
        if (!places.empty())
          err.schema_pointer = places.front();
      }
    } else if (!places.empty()) {
      err.schema_pointer = places.front();
    }
    err.message = nicer_message(err.keyword, located, *value, r.text);
    if (seen.emplace(err.pointer, err.keyword, err.schema_pointer,
                     err.message)
          .second)
      out.push_back(std::move(err));
  }
  if (out.empty()) {
    // valijson reports nothing for a false schema and for propertyNames.
    schema_error err;
    if (s.doc.is_boolean()) {
      err.keyword = "false";
      err.message = "The schema is false: no value is valid";
    } else {
      locator all{s, instance};
      auto places = all.at("");
      for (const auto& p : places)
        if (const json* n = all.node(p);
            n && n->is_object() && n->contains("propertyNames")) {
          err.keyword = "propertyNames";
          err.schema_pointer = child(p, "propertyNames");
          break;
        }
      err.message = err.keyword.empty()
                      ? "Value does not match the schema"
                      : "A property name does not match the propertyNames "
                        "schema";
    }
    out.push_back(std::move(err));
  }
  return out;
}

} // namespace

json_schema::json_schema(std::shared_ptr<const impl> ptr)
  : impl_(std::move(ptr)) {
}

int draft_of(const json& schema) {
  if (!schema.is_object())
    return 0;
  auto it = schema.find("$schema");
  if (it == schema.end() || !it->is_string())
    return 0;
  return meta_schema_draft(it->get<std::string>());
}

expected<json_schema> json_schema::compile(const json& schema,
                                           const schema_options& opts,
                                           std::string* problem_at) {
  auto fail = [&](std::string pointer, std::string what) -> caf::error {
    if (problem_at)
      *problem_at = std::move(pointer);
    return make_error(errc::invalid_input, std::move(what));
  };
  int draft = opts.draft;
  if (draft != 0 && draft != 4 && draft != 6 && draft != 7)
    return fail("", "draft " + std::to_string(draft)
                      + " is not supported (use 4, 6 or 7)");
  if (draft == 0)
    draft = draft_of(schema);
  if (draft == 0)
    draft = 7;
  auto problems = run(meta_schema(draft), schema);
  if (!problems.empty()) {
    std::string what = "not a valid draft-" + std::to_string(draft)
                       + " JSON Schema: " + problems.front().message;
    for (size_t i = 1; i < problems.size(); ++i)
      what += "; "
              + (problems[i].pointer.empty() ? std::string{"/"}
                                             : problems[i].pointer)
              + ": " + problems[i].message;
    return fail(problems.front().pointer, std::move(what));
  }
  try {
    return json_schema{build(schema, draft, opts.remotes_dir)};
  } catch (const fetch_failure& e) {
    return fail("", e.what());
  } catch (const pattern_failure& e) {
    return fail(e.pointer, e.what());
  } catch (const std::exception& e) {
    return fail("", std::string{"not a usable JSON Schema: "} + e.what());
  }
}

std::vector<schema_error> json_schema::validate(const json& instance) const {
  if (!impl_)
    return {};
  return run(*impl_, instance);
}

bool json_schema::accepts(const json& instance) const {
  if (!impl_)
    return true;
  return check(*impl_, instance, nullptr);
}

int json_schema::draft() const {
  return impl_ ? impl_->draft : 7;
}

std::string to_string(const std::vector<schema_error>& errors) {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty())
      out += "; ";
    out += (e.pointer.empty() ? std::string{"/"} : e.pointer) + ": "
           + e.message;
  }
  return out;
}

} // namespace cadre::tools
