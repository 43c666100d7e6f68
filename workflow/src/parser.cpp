// Reading workflow text: YAML (and JSON, which YAML reads as flow style) to
// a JSON document with the source location of every node.

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "cadre/workflow/definition.hpp"
#include "document.hpp"

namespace cadre::workflow {

namespace detail {

namespace {

/// Deeper nesting is refused (also stops alias loops).
constexpr int max_depth = 256;

source_location location_of(const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0)
    return {};
  return {mark.line + 1, mark.column + 1};
}

bool is_digits(std::string_view s, bool hex = false) {
  if (s.empty())
    return false;
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9')
              || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
    if (!ok)
      return false;
  }
  return true;
}

std::optional<json> parse_int(std::string_view s) {
  std::string_view digits = s;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0'
      && (digits[1] == 'x' || digits[1] == 'o')) {
    base = digits[1] == 'x' ? 16 : 8;
    digits.remove_prefix(2);
    if (s[0] == '-' || s[0] == '+')
      return std::nullopt; // YAML 1.2: no sign on 0x / 0o
  }
  if (!is_digits(digits, base == 16))
    return std::nullopt;
  if (base == 8)
    for (char c : digits)
      if (c > '7')
        return std::nullopt;
  uint64_t u = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(),
                                   u, base);
  if (ec == std::errc{} && end == digits.data() + digits.size()) {
    if (!negative)
      return u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? json(static_cast<int64_t>(u))
               : json(u);
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1)
      return json(static_cast<int64_t>(0 - u));
  }
  // Too large for 64 bits: keep it as a float.
  return json(std::strtod(std::string{s}.c_str(), nullptr));
}

std::optional<json> parse_float(std::string_view s) {
  // YAML 1.2 core schema: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+'))
    ++i;
  size_t int_digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    ++i;
    ++int_digits;
  }
  size_t frac_digits = 0;
  bool dot = false;
  if (i < s.size() && s[i] == '.') {
    dot = true;
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++frac_digits;
    }
  }
  if (int_digits == 0 && frac_digits == 0)
    return std::nullopt;
  bool exponent = false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    exponent = true;
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+'))
      ++i;
    size_t exp_digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++exp_digits;
    }
    if (exp_digits == 0)
      return std::nullopt;
  }
  if (i != s.size() || (!dot && !exponent))
    return std::nullopt;
  return json(std::strtod(std::string{s}.c_str(), nullptr));
}

/// A plain scalar under the YAML 1.2 core schema (null is already a Null
/// node in yaml-cpp).
json infer_scalar(const std::string& s, bool& numeric) {
  numeric = false;
  if (s == "true" || s == "True" || s == "TRUE")
    return true;
  if (s == "false" || s == "False" || s == "FALSE")
    return false;
  if (auto i = parse_int(s)) {
    numeric = true;
    return *i;
  }
  if (auto f = parse_float(s)) {
    numeric = true;
    return *f;
  }
  return s;
}

class converter {
public:
  converter(const std::string& file, locations& where,
            std::vector<diagnostic>& errors)
    : file_(file), where_(where), errors_(errors) {
  }

  json convert(const YAML::Node& node, const std::string& pointer,
               int depth) {
    where_.values.emplace(pointer, location_of(node.Mark()));
    if (depth > max_depth) {
      error(node.Mark(), pointer,
            "nested deeper than " + std::to_string(max_depth) + " levels");
      return nullptr;
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        return scalar(node, pointer);
      case YAML::NodeType::Sequence: {
        json out = json::array();
        size_t i = 0;
        for (const auto& item : node)
          out.push_back(
            convert(item, pointer + "/" + std::to_string(i++), depth + 1));
        return out;
      }
      case YAML::NodeType::Map: {
        json out = json::object();
        for (auto it = node.begin(); it != node.end(); ++it) {
          // Copies: GCC 12 sees dangling temporaries in it->first.Scalar().
          YAML::Node key = it->first;
          YAML::Node value = it->second;
          if (!key.IsScalar()) {
            error(key.Mark(), pointer,
                  "a mapping key must be a plain text, not a "
                    + std::string{key.IsMap() ? "mapping" : "sequence"});
            continue;
          }
          std::string name = key.Scalar();
          auto child = child_pointer(pointer, name);
          if (out.contains(name)) {
            auto first = where_.keys[child];
            error(key.Mark(), child,
                  "duplicate key '" + name + "' (first at line "
                    + std::to_string(first.line) + ")");
            continue;
          }
          where_.keys.emplace(child, location_of(key.Mark()));
          out[name] = convert(value, child, depth + 1);
          // An empty value has the mark of whatever follows it.
          if (value.IsNull() && value.Mark().line != key.Mark().line)
            where_.values[child] = location_of(key.Mark());
        }
        return out;
      }
    }
    return nullptr;
  }

private:
  json scalar(const YAML::Node& node, const std::string& pointer) {
    const auto& tag = node.Tag();
    const auto& text = node.Scalar();
    // yaml-cpp tags quoted and block scalars "!": they stay strings.
    if (tag == "!" || tag == "tag:yaml.org,2002:str")
      return text;
    bool numeric = false;
    if (tag == "?" || tag.empty()) {
      auto value = infer_scalar(text, numeric);
      if (numeric)
        where_.raw_numbers.emplace(pointer, text);
      return value;
    }
    if (tag == "tag:yaml.org,2002:null")
      return nullptr;
    auto value = infer_scalar(text, numeric);
    bool fits = (tag == "tag:yaml.org,2002:int" && value.is_number_integer())
                || (tag == "tag:yaml.org,2002:float" && value.is_number())
                || (tag == "tag:yaml.org,2002:bool" && value.is_boolean());
    if (fits)
      return tag == "tag:yaml.org,2002:float" ? json(value.get<double>())
                                              : value;
    error(node.Mark(), pointer,
          "unsupported tag '" + tag + "' on '" + text + "'");
    return text;
  }

  void error(const YAML::Mark& mark, const std::string& pointer,
             std::string message) {
    errors_.push_back({file_, location_of(mark), pointer, std::move(message)});
  }

  const std::string& file_;
  locations& where_;
  std::vector<diagnostic>& errors_;
};

} // namespace

source_location locations::find(const std::string& pointer, bool key) const {
  std::string p = pointer;
  if (key)
    if (auto it = keys.find(p); it != keys.end() && it->second.line > 0)
      return it->second;
  for (;;) {
    if (auto it = values.find(p); it != values.end() && it->second.line > 0)
      return it->second;
    if (p.empty())
      return {};
    p.resize(p.rfind('/'));
  }
}

json read_yaml(const std::string& text, const std::string& file,
               locations& where, std::vector<diagnostic>& errors) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::ParserException& e) {
    errors.push_back({file, location_of(e.mark), "",
                      "syntax error: " + e.msg});
    return nullptr;
  } catch (const std::exception& e) {
    errors.push_back({file, {}, "", std::string{"cannot read: "} + e.what()});
    return nullptr;
  }
  if (docs.empty() || docs[0].IsNull()) {
    errors.push_back({file, {1, 1}, "",
                      "the document is empty; expected a mapping with "
                      "'name' and 'tasks'"});
    return nullptr;
  }
  if (docs.size() > 1)
    errors.push_back({file, location_of(docs[1].Mark()), "",
                      "more than one document (---); a file holds one "
                      "workflow"});
  converter conv{file, where, errors};
  try {
    return conv.convert(docs[0], "", 0);
  } catch (const std::exception& e) {
    errors.push_back({file, {}, "", std::string{"cannot read: "} + e.what()});
    return nullptr;
  }
}

} // namespace detail

namespace {

void sort_by_location(std::vector<diagnostic>& errors) {
  std::stable_sort(errors.begin(), errors.end(),
                   [](const diagnostic& x, const diagnostic& y) {
                     if (x.where.line != y.where.line)
                       return x.where.line < y.where.line;
                     return x.where.column < y.where.column;
                   });
}

} // namespace

parse_result parse_text(const std::string& text, const std::string& file,
                        const validation_context& ctx) {
  detail::locations where;
  std::vector<diagnostic> errors;
  auto doc = detail::read_yaml(text, file, where, errors);
  parse_result result;
  if (!doc.is_null() || errors.empty())
    result = detail::validate(doc, file, &where, ctx);
  errors.insert(errors.end(), result.errors.begin(), result.errors.end());
  sort_by_location(errors);
  result.errors = std::move(errors);
  if (!result.errors.empty())
    result.def.reset();
  return result;
}

parse_result parse_file(const std::string& path,
                        const validation_context& ctx) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    parse_result result;
    result.errors.push_back(
      {path, {}, "", std::string{"cannot open the file: "}
                       + std::strerror(errno)});
    return result;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_text(buf.str(), path, ctx);
}

parse_result parse_document(const json& doc, const validation_context& ctx) {
  return detail::validate(doc, "", nullptr, ctx);
}

expected<definition> load_document(const json& doc) {
  auto parsed = parse_document(doc, validation_context{});
  if (!parsed.def) {
    std::string msg = "invalid workflow";
    for (auto& d : parsed.errors)
      msg += "\n  " + d.to_string();
    return make_error(errc::invalid_workflow, std::move(msg));
  }
  return std::move(*parsed.def);
}

} // namespace cadre::workflow
