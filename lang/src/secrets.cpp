#include "cadre/lang/secrets.hpp"

#include <algorithm>
#include <cctype>

#include <caf/atom.hpp>

namespace cadre::tools {

namespace {

std::string_view trim(std::string_view x) {
  while (!x.empty() && std::isspace(static_cast<unsigned char>(x.front())))
    x.remove_prefix(1);
  while (!x.empty() && std::isspace(static_cast<unsigned char>(x.back())))
    x.remove_suffix(1);
  return x;
}

bool secret_name(std::string_view x) {
  if (x.empty())
    return false;
  for (unsigned char c : x)
    if (!std::isalnum(c) && c != '_')
      return false;
  return true;
}

constexpr std::string_view prefix = "secrets.";

} // namespace

std::optional<std::string> secret_reference(std::string_view expr) {
  expr = trim(expr);
  if (expr.substr(0, prefix.size()) != prefix)
    return std::nullopt;
  auto name = expr.substr(prefix.size());
  if (!secret_name(name))
    return std::nullopt;
  return std::string{name};
}

bool holds_secret_reference(std::string_view text) {
  for (auto open = text.find("{{"); open != std::string_view::npos;
       open = text.find("{{", open + 2)) {
    auto close = text.find("}}", open + 2);
    if (close == std::string_view::npos)
      return false;
    if (secret_reference(text.substr(open + 2, close - open - 2)))
      return true;
  }
  return false;
}

void secret_store::add(const std::string& name, std::string value) {
  if (!value.empty()
      && std::find(values_.begin(), values_.end(), value) == values_.end()) {
    values_.push_back(value);
    std::stable_sort(values_.begin(), values_.end(),
                     [](const auto& a, const auto& b) {
                       return a.size() > b.size();
                     });
  }
  entries_[name] = entry{std::move(value), {}};
}

void secret_store::add_unavailable(const std::string& name, std::string why) {
  entries_[name] = entry{std::nullopt, std::move(why)};
}

bool secret_store::contains(const std::string& name) const {
  return entries_.count(name) > 0;
}

std::vector<std::string> secret_store::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_)
    out.push_back(name);
  return out;
}

expected<json_value>
secret_store::resolve(const json_value& input,
                      const std::vector<std::string>& pointers) const {
  if (pointers.empty())
    return input;
  json out = *input;
  for (const auto& pointer : pointers) {
    json::json_pointer at;
    try {
      at = json::json_pointer{pointer};
    } catch (const json::exception&) {
      return make_error(errc::internal, "secret reference at an invalid "
                                        "JSON pointer '" + pointer + "'");
    }
    if (!out.contains(at) || !out[at].is_string())
      continue;
    auto& text = out[at].get_ref<std::string&>();
    std::string filled;
    size_t pos = 0;
    for (auto open = text.find("{{"); open != std::string::npos;
         open = text.find("{{", pos)) {
      auto close = text.find("}}", open + 2);
      if (close == std::string::npos)
        break;
      auto name = secret_reference(
        std::string_view{text}.substr(open + 2, close - open - 2));
      filled.append(text, pos, open - pos);
      pos = close + 2;
      if (!name) {
        filled.append(text, open, pos - open);
        continue;
      }
      auto e = entries_.find(*name);
      if (e == entries_.end()) {
        std::string known;
        for (const auto& n : names())
          known += (known.empty() ? "" : ", ") + n;
        return make_error(errc::invalid_input,
                          "input" + pointer + ": unknown secret '" + *name
                            + "' (secrets: "
                            + (known.empty() ? "none configured" : known)
                            + ")");
      }
      if (!e->second.value)
        return make_error(errc::invalid_config,
                          "input" + pointer + ": secret '" + *name
                            + "': " + e->second.why);
      filled += *e->second.value;
    }
    filled.append(text, pos, std::string::npos);
    text = std::move(filled);
  }
  return json_value{std::move(out)};
}

std::string secret_store::redact(std::string text) const {
  for (const auto& v : values_)
    text = scrub(std::move(text), v);
  return text;
}

caf::error secret_store::redact(const caf::error& err) const {
  if (values_.empty() || err.category() != caf::atom("cadre"))
    return err;
  auto msg = message_of(err);
  auto clean = redact(msg);
  if (clean == msg)
    return err;
  return make_error(code_of(err), std::move(clean));
}

void secret_store::redact(json& x) const {
  if (values_.empty())
    return;
  if (x.is_string()) {
    auto& s = x.get_ref<std::string&>();
    s = redact(std::move(s));
  } else if (x.is_array()) {
    for (auto& v : x)
      redact(v);
  } else if (x.is_object()) {
    json out = json::object();
    for (auto& [key, value] : x.items()) {
      redact(value);
      out[redact(key)] = std::move(value);
    }
    x = std::move(out);
  }
}

} // namespace cadre::tools
