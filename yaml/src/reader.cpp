// The one YAML reader: YAML (and JSON, which YAML reads as flow style) to
// a JSON document with the place of every value, bounded in depth and in
// what aliases expand to.

#include "cadre/yaml/reader.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "cadre/messages/utf8.hpp"

namespace cadre::yaml {

namespace {

position position_of(const YAML::Mark& mark) {
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

/// Thrown when the document grows past a bound: the conversion stops.
struct too_large {};

class converter {
public:
  converter(document& doc, const read_options& opts) : doc_(doc), opts_(opts) {
  }

  json convert(const YAML::Node& node, const std::string& pointer,
               size_t depth) {
    doc_.values.emplace(pointer, position_of(node.Mark()));
    // Aliases share their node, so every use counts again here: this bounds
    // what a few nested aliases can expand to.
    if (++values_ > opts_.max_values) {
      error(node.Mark(), pointer,
            "the document holds more than " + std::to_string(opts_.max_values)
              + " values once its aliases are expanded");
      throw too_large{};
    }
    if (depth > opts_.max_depth) {
      error(node.Mark(), pointer,
            "nested deeper than " + std::to_string(opts_.max_depth)
              + " levels");
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
          count_bytes(key, pointer, name.size());
          if (!utf8(key, pointer, name))
            continue;
          auto child = child_pointer(pointer, name);
          if (out.contains(name)) {
            auto first = doc_.keys[child];
            error(key.Mark(), child,
                  "duplicate key '" + name + "' (first at line "
                    + std::to_string(first.line) + ")");
            continue;
          }
          doc_.keys.emplace(child, position_of(key.Mark()));
          out[name] = convert(value, child, depth + 1);
          // An empty value has the mark of whatever follows it.
          if (value.IsNull() && value.Mark().line != key.Mark().line)
            doc_.values[child] = position_of(key.Mark());
        }
        return out;
      }
    }
    return nullptr;
  }

private:
  // JSON text is UTF-8: a key or scalar that is not would abort whatever
  // writes it out later (issue 12).
  bool utf8(const YAML::Node& node, const std::string& pointer,
            const std::string& text) {
    auto at = invalid_utf8_at(text);
    if (at == std::string::npos)
      return true;
    error(node.Mark(), pointer,
          "not valid UTF-8 (at byte " + std::to_string(at) + ")");
    return false;
  }

  void count_bytes(const YAML::Node& node, const std::string& pointer,
                   size_t n) {
    bytes_ += n;
    if (bytes_ > opts_.max_bytes) {
      error(node.Mark(), pointer,
            "the document holds more than " + std::to_string(opts_.max_bytes)
              + " bytes of text once its aliases are expanded");
      throw too_large{};
    }
  }

  json scalar(const YAML::Node& node, const std::string& pointer) {
    const auto& tag = node.Tag();
    const auto& text = node.Scalar();
    count_bytes(node, pointer, text.size());
    if (!utf8(node, pointer, text))
      return nullptr;
    // yaml-cpp tags quoted and block scalars "!": they stay strings.
    if (tag == "!" || tag == "tag:yaml.org,2002:str")
      return text;
    bool numeric = false;
    if (tag == "?" || tag.empty()) {
      auto value = infer_scalar(text, numeric);
      if (!finite(node, pointer, text, value))
        return nullptr;
      if (numeric)
        doc_.raw_numbers.emplace(pointer, text);
      return value;
    }
    if (tag == "tag:yaml.org,2002:null")
      return nullptr;
    auto value = infer_scalar(text, numeric);
    if (!finite(node, pointer, text, value))
      return nullptr;
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

  /// False (and a located problem) for a number past what a double holds,
  /// e.g. 1e400, which would otherwise become infinity and then null.
  bool finite(const YAML::Node& node, const std::string& pointer,
              const std::string& text, const json& value) {
    if (!value.is_number_float() || std::isfinite(value.get<double>()))
      return true;
    error(node.Mark(), pointer,
          "the number " + text.substr(0, 40)
            + " is out of range (at most about 1.8e308)");
    return false;
  }

  void error(const YAML::Mark& mark, const std::string& pointer,
             std::string message) {
    doc_.problems.push_back({position_of(mark), pointer, std::move(message)});
  }

  document& doc_;
  const read_options& opts_;
  size_t values_ = 0;
  size_t bytes_ = 0;
};

} // namespace

std::string child_pointer(const std::string& pointer,
                          const std::string& token) {
  return pointer + (json::json_pointer{} / token).to_string();
}

position document::find(const std::string& pointer, bool key) const {
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

namespace {

/// Where each document of a text starts, read as parser events (no nodes
/// are built, no alias expanded), and what the first document expands to:
/// its values and bytes of text counted as the converter counts them, an
/// alias adding what its anchor's node counted. So an alias bomb is
/// refused in time linear in its text, before any of it is expanded.
class document_starts : public YAML::EventHandler {
public:
  explicit document_starts(const read_options& opts) : opts_(&opts) {
  }

  /// Where each document starts, and where its first value does (the
  /// document's start when it has none).
  std::vector<YAML::Mark> marks;
  std::vector<YAML::Mark> values;
  /// The first document expands past read_options::max_values (or
  /// max_bytes): where (the node whose use crossed the bound) and which.
  std::optional<YAML::Mark> too_large_at;
  bool too_many_bytes = false;
  /// The first document has an alias inside its anchor's node: where.
  std::optional<YAML::Mark> recursive_at;

  void OnDocumentStart(const YAML::Mark& mark) override {
    marks.push_back(mark);
    values.push_back(mark);
    fresh_ = true;
    counting_ = marks.size() == 1;
  }
  void OnDocumentEnd() override {
    counting_ = false;
  }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    value(mark);
    leaf(mark, anchor, {1, 0});
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    value(mark);
    if (!counting_)
      return;
    auto found = anchors_.find(anchor);
    if (found == anchors_.end()) {
      // Not finished: the anchor is on a node that holds this alias, which
      // yaml-cpp builds as a structure that contains itself (it refuses an
      // unknown alias itself).
      bool open = std::any_of(
        stack_.begin(), stack_.end(),
        [&](const frame& f) { return f.anchor == anchor; });
      if (open && !recursive_at)
        recursive_at = mark;
      return;
    }
    // A key is read only as text: an alias there counts as none (the
    // converter's own count still bounds it).
    if (next_is_key())
      return add_to_parent(found->second.mark, {0, 0});
    add_to_parent(found->second.mark, found->second.size);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&,
                YAML::anchor_t anchor, const std::string& text) override {
    value(mark);
    leaf(mark, anchor, {next_is_key() ? 0u : 1u, text.size()});
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&,
                       YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    value(mark);
    open(mark, anchor, false);
  }
  void OnSequenceEnd() override {
    close();
  }
  void OnMapStart(const YAML::Mark& mark, const std::string&,
                  YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    value(mark);
    open(mark, anchor, true);
  }
  void OnMapEnd() override {
    close();
  }

private:
  /// Values and bytes of text, saturating far above any bound.
  struct expansion {
    uint64_t values = 0;
    uint64_t bytes = 0;
  };
  struct frame {
    YAML::Mark mark;
    YAML::anchor_t anchor = YAML::NullAnchor;
    bool map = false;
    /// A mapping's key: its contents are never converted.
    bool key = false;
    size_t children = 0;
    expansion size;
  };
  struct anchored {
    YAML::Mark mark;
    expansion size;
  };

  static uint64_t sum(uint64_t x, uint64_t y) {
    constexpr uint64_t cap = uint64_t{1} << 62;
    return std::min(cap, std::min(cap, x) + std::min(cap, y));
  }

  void value(const YAML::Mark& mark) {
    if (fresh_ && !values.empty() && mark.pos >= 0)
      values.back() = mark;
    fresh_ = false;
  }

  bool next_is_key() const {
    return !stack_.empty() && stack_.back().map
           && stack_.back().children % 2 == 0;
  }

  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor, expansion size) {
    if (!counting_)
      return;
    if (anchor != YAML::NullAnchor)
      anchors_[anchor] = {mark, size};
    add_to_parent(mark, size);
  }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor, bool map) {
    if (!counting_)
      return;
    frame f;
    f.mark = mark;
    f.anchor = anchor;
    f.map = map;
    f.key = next_is_key();
    f.size = {f.key ? 0u : 1u, 0};
    stack_.push_back(f);
  }

  void close() {
    if (!counting_ || stack_.empty())
      return;
    auto f = stack_.back();
    stack_.pop_back();
    if (f.key)
      f.size = {};
    if (f.anchor != YAML::NullAnchor)
      anchors_[f.anchor] = {f.mark, f.size};
    add_to_parent(f.mark, f.size);
  }

  /// Adds a finished node (or an alias of one, at `mark`) to its parent,
  /// or to the document's total.
  void add_to_parent(const YAML::Mark& mark, expansion size) {
    auto& into = stack_.empty() ? total_ : stack_.back().size;
    into.values = sum(into.values, size.values);
    into.bytes = sum(into.bytes, size.bytes);
    if (!stack_.empty())
      ++stack_.back().children;
    // Each node's count includes its children's: checked where it grows.
    if (!too_large_at && (into.values > opts_->max_values
                          || into.bytes > opts_->max_bytes)) {
      too_large_at = mark;
      too_many_bytes = into.values <= opts_->max_values;
    }
  }

  const read_options* opts_;
  bool fresh_ = false;
  bool counting_ = false;
  std::vector<frame> stack_;
  std::unordered_map<YAML::anchor_t, anchored> anchors_;
  expansion total_;
};

/// The starts of every document of `text`; throws YAML's exceptions for a
/// syntax error in any of them. yaml-cpp (0.7) does not consume a ',' where
/// a document starts: it reports one empty document after another there
/// for ever (YAML::LoadAll never returns), so a document that starts where
/// the previous one did is a syntax error here.
document_starts read_document_starts(const std::string& text,
                                     const read_options& opts) {
  std::istringstream in{text};
  YAML::Parser parser{in};
  document_starts starts{opts};
  while (parser.HandleNextDocument(starts)) {
    auto n = starts.marks.size();
    if (n >= 2 && starts.marks[n - 1].pos == starts.marks[n - 2].pos) {
      auto at = starts.marks[n - 1];
      auto pos = static_cast<size_t>(at.pos);
      throw YAML::ParserException(
        at, pos < text.size() && text[pos] == ','
              ? "',' outside a flow collection ([...] or {...})"
              : "the parser cannot go on here");
    }
  }
  return starts;
}

} // namespace

document read(const std::string& text, const read_options& opts) {
  document doc;
  std::optional<document_starts> starts;
  YAML::Node first;
  try {
    starts.emplace(read_document_starts(text, opts));
    if (starts->too_large_at) {
      doc.empty = false;
      doc.problems.push_back(
        {position_of(*starts->too_large_at), "",
         starts->too_many_bytes
           ? "the document holds more than " + std::to_string(opts.max_bytes)
               + " bytes of text once its aliases are expanded"
           : "the document holds more than "
               + std::to_string(opts.max_values)
               + " values once its aliases are expanded"});
      return doc;
    }
    if (starts->recursive_at) {
      doc.empty = false;
      doc.problems.push_back({position_of(*starts->recursive_at), "",
                              "an alias of a node inside that node (a "
                              "structure that contains itself has no JSON "
                              "form)"});
      return doc;
    }
    if (!starts->marks.empty())
      first = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    doc.empty = false;
    doc.problems.push_back({position_of(e.mark), "",
                            "nested too deeply for the YAML parser (it "
                            "stops at about 500 levels of flow collections)"});
    return doc;
  } catch (const YAML::ParserException& e) {
    doc.empty = false;
    doc.problems.push_back({position_of(e.mark), "",
                            "syntax error: " + e.msg});
    return doc;
  } catch (const std::exception& e) {
    doc.empty = false;
    doc.problems.push_back({{}, "", std::string{"cannot read: "} + e.what()});
    return doc;
  }
  if (starts->marks.empty() || first.IsNull())
    return doc;
  doc.empty = false;
  if (starts->values.size() > 1)
    doc.second_document = position_of(starts->values[1]);
  converter conv{doc, opts};
  try {
    doc.value = conv.convert(first, "", 0);
  } catch (const too_large&) {
    doc.value = nullptr;
    // The maps hold what was read before the bound: drop them.
    doc.values.clear();
    doc.keys.clear();
    doc.raw_numbers.clear();
  } catch (const std::exception& e) {
    doc.value = nullptr;
    doc.problems.push_back({{}, "", std::string{"cannot read: "} + e.what()});
  }
  return doc;
}

expected<json> read_file(const std::string& path, const read_options& opts) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::invalid_input, "cannot read '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  auto doc = read(text.str(), opts);
  if (!doc.problems.empty()) {
    const auto& bad = doc.problems.front();
    return make_error(errc::invalid_input,
                      path + ":" + std::to_string(bad.at.line) + ":"
                        + std::to_string(bad.at.column) + ": " + bad.message);
  }
  return std::move(doc.value);
}

} // namespace cadre::yaml
