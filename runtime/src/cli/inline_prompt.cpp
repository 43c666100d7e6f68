#include "cli/inline_prompt.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <istream>
#include <ostream>
#include <sstream>

#include "cadre/messages/json_text.hpp"
#include "cadre/workflow/definition.hpp"
#include "cli/output.hpp"

namespace cadre::runtime::cli {

namespace {

std::string trim(const std::string& s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b])))
    ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])))
    --e;
  return s.substr(b, e - b);
}

std::string choice_text(const json& v) {
  return v.is_string() ? v.get<std::string>() : dump_json(v);
}

// The terminal: what is to be shown is gathered and written at once before
// each read, so the progress lines of the run (written meanwhile by another
// thread) fall between whole pieces of the question, not inside them.
struct term {
  std::istream& in;
  std::ostream& screen;
  std::ostringstream out;
};

// Shows what was gathered and `prompt`, and reads one line; false when the
// input ended.
bool read_line(term& t, const std::string& prompt, std::string& line) {
  t.screen << t.out.str() + prompt << std::flush;
  t.out.str("");
  if (!std::getline(t.in, line)) {
    t.screen << "\n" << std::flush;
    return false;
  }
  line = trim(line);
  return true;
}

std::string indented(const std::string& text, const std::string& pad) {
  std::string out = pad;
  for (char c : text) {
    out += c;
    if (c == '\n')
      out += pad;
  }
  return out;
}

void show_prompt(const open_question& q, std::ostream& out) {
  out << "\n? " << q.task << " waits for your answer\n";
  const auto& p = q.prompt;
  if (p.is_string()) {
    out << indented(p.get<std::string>(), "  ") << "\n";
    return;
  }
  if (!p.is_object()) {
    out << indented(dump_json(p, 2), "  ") << "\n";
    return;
  }
  // The question first, then what it shows (each other key).
  if (auto i = p.find("question"); i != p.end() && i->is_string())
    out << indented(i->get<std::string>(), "  ") << "\n";
  for (auto& [k, v] : p.items())
    if (k != "question")
      out << "  " << k << ": "
          << (v.is_string() ? v.get<std::string>()
                            : indented(dump_json(v, 2), "  ").substr(2))
          << "\n";
}

// A property the form asks for itself: an enum, a string, a boolean, a
// number.
bool plain(const json& s) {
  if (!s.is_object())
    return false;
  if (auto e = s.find("enum"); e != s.end())
    return e->is_array() && !e->empty();
  auto t = s.value("type", json{});
  return t == "string" || t == "boolean" || t == "number" || t == "integer";
}

// An object schema whose properties are all plain: asked field by field.
bool form_schema(const json& schema) {
  if (!schema.is_object() || schema.value("type", json{}) != "object")
    return false;
  auto props = schema.find("properties");
  if (props == schema.end() || !props->is_object() || props->empty())
    return false;
  return std::all_of(props->begin(), props->end(), plain);
}

enum class field_read { value, left_out, ended };

// Asks one property until it reads; left_out for an empty optional one.
field_read ask_field(const std::string& name, const json& s, bool required,
                     term& t, json& value) {
  auto& out = t.out;
  auto opt = required ? std::string{} : std::string{", Enter to leave out"};
  if (auto d = s.find("description"); d != s.end() && d->is_string())
    out << "  " << name << ": " << d->get<std::string>() << "\n";
  std::string line;
  for (;;) {
    if (auto e = s.find("enum"); e != s.end()) {
      out << "  " << name << ":";
      for (size_t i = 0; i < e->size(); ++i)
        out << "  " << i + 1 << ") " << choice_text((*e)[i]);
      out << "\n";
      if (!read_line(t,
                     "  choose 1-" + std::to_string(e->size()) + opt + ": ",
                     line))
        return field_read::ended;
      if (line.empty() && !required)
        return field_read::left_out;
      for (size_t i = 0; i < e->size(); ++i)
        if (line == std::to_string(i + 1) || line == choice_text((*e)[i])) {
          value = (*e)[i];
          return field_read::value;
        }
      out << "  '" << line << "' is not one of the choices\n";
      continue;
    }
    auto type = s.value("type", std::string{});
    if (type == "string") {
      if (!read_line(t, "  " + name + " (text" + opt + "): ", line))
        return field_read::ended;
      if (line.empty() && !required)
        return field_read::left_out;
      value = line;
      return field_read::value;
    }
    if (type == "boolean") {
      if (!read_line(t, "  " + name + " [y/n" + opt + "]: ", line))
        return field_read::ended;
      if (line.empty() && !required)
        return field_read::left_out;
      if (line == "y" || line == "yes" || line == "true") {
        value = true;
        return field_read::value;
      }
      if (line == "n" || line == "no" || line == "false") {
        value = false;
        return field_read::value;
      }
      out << "  answer y or n\n";
      continue;
    }
    // number or integer
    if (!read_line(t, "  " + name + " (a number" + opt + "): ", line))
      return field_read::ended;
    if (line.empty() && !required)
      return field_read::left_out;
    auto n = json::parse(line, nullptr, false);
    if (n.is_number() && (type != "integer" || n.is_number_integer())) {
      value = std::move(n);
      return field_read::value;
    }
    out << "  '" << line << "' is not "
        << (type == "integer" ? "a whole number" : "a number") << "\n";
  }
}

// One answer read field by field; nullopt when `in` ended.
std::optional<json> read_form(const json& schema, term& t) {
  const auto& props = schema.at("properties");
  std::vector<std::string> order;
  if (auto r = schema.find("required"); r != schema.end() && r->is_array())
    for (const auto& name : *r)
      if (name.is_string() && props.contains(name.get<std::string>()))
        order.push_back(name.get<std::string>());
  auto required = order.size();
  for (auto& [k, v] : props.items())
    if (std::find(order.begin(), order.end(), k) == order.end())
      order.push_back(k);
  json answer = json::object();
  for (size_t i = 0; i < order.size(); ++i) {
    json value;
    switch (ask_field(order[i], props.at(order[i]), i < required, t, value)) {
      case field_read::ended:
        return std::nullopt;
      case field_read::left_out:
        break;
      case field_read::value:
        answer[order[i]] = std::move(value);
        break;
    }
  }
  return answer;
}

// One answer as a line of JSON; nullopt when `in` ended.
std::optional<json> read_json(const json& schema, term& t) {
  auto& out = t.out;
  if (!schema.is_null())
    out << "  the answer must match: " << dump_json(schema) << "\n";
  std::string line;
  for (;;) {
    if (!read_line(t, "  answer (JSON; a bare word is text): ", line))
      return std::nullopt;
    if (line.empty())
      continue;
    auto v = parse_answer(line);
    if (v)
      return std::move(*v);
    out << "  " << message_of(v.error()) << "\n";
  }
}

} // namespace

std::vector<open_question> open_questions(const json& view) {
  std::vector<open_question> out;
  auto w = view.find("waiting");
  if (w == view.end() || !w->is_array())
    return out;
  for (const auto& q : *w)
    out.push_back({q.value("task", std::string{}), q.value("prompt", json{}),
                   q.value("answer_schema", json{})});
  return out;
}

std::optional<json> ask_inline(const open_question& q, std::istream& in,
                               std::ostream& out) {
  term t{in, out, {}};
  show_prompt(q, t.out);
  bool form = form_schema(q.answer_schema);
  for (;;) {
    auto answer = form ? read_form(q.answer_schema, t)
                       : read_json(q.answer_schema, t);
    if (!answer)
      return std::nullopt;
    if (q.answer_schema.is_null())
      return answer;
    auto ok = workflow::check_schema(q.answer_schema, *answer,
                                     "answer to " + q.task);
    if (ok)
      return answer;
    // The same check the node makes: say why, and ask again.
    t.out << "  " << message_of(ok.error()) << "\n  again:\n";
  }
}

bool can_ask_inline(bool json_out) {
  return !json_out && isatty(STDIN_FILENO) != 0 && isatty(STDERR_FILENO) != 0;
}

} // namespace cadre::runtime::cli
