// scripted: a deterministic model for tests, examples and offline runs. It
// answers from a script of entries (profile settings `script`: a YAML or
// JSON file, or inline `turns`); the first entry that matches the request
// replies with text and/or tool calls. See docs/agents.md.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cadre/tools/llm/provider.hpp"
#include "cadre/lang/regex.hpp"
#include "cadre/yaml/reader.hpp"
#include "cadre/messages/json_text.hpp"
#include "llm_support.hpp"

namespace cadre::tools::llm {

namespace {


/// One entry of a script.
struct entry {
  /// Position in the script, for messages ("turns/2").
  std::string where;
  /// Matches only this agent; empty: any.
  std::string agent;
  /// Matches only this turn (the request's 1-based call number); 0: any.
  uint32_t turn = 0;
  /// Matches when the last message's content contains a match (RE2: the
  /// content is whatever a tool or a person wrote).
  std::optional<regex> match;
  std::string match_text;
  /// Used only when no other entry matches.
  bool is_default = false;
  /// The reply: a text template, tool calls (arguments are templates),
  /// usage, and a delay before answering.
  std::string text;
  json tool_calls = json::array();
  std::optional<uint64_t> input_tokens;
  std::optional<uint64_t> output_tokens;
  uint64_t delay_ms = 0;
  /// Fail instead of replying: "<errc name>: message".
  std::string error;
};

caf::error script_error(const profile& p, const std::string& where,
                        const std::string& what) {
  return make_error(errc::invalid_config,
                    "llm.profiles." + p.name + ".settings"
                      + (where.empty() ? "" : "." + where) + ": " + what);
}

expected<uint64_t> uint_of(const profile& p, const std::string& where,
                           const json& x) {
  if (x.is_number_unsigned())
    return x.get<uint64_t>();
  if (x.is_number_integer() && x.get<int64_t>() >= 0)
    return static_cast<uint64_t>(x.get<int64_t>());
  return script_error(p, where, "must be an integer >= 0, got " + dump_json(x));
}

expected<entry> parse_entry(const profile& p, const json& e,
                            const std::string& where) {
  entry out;
  out.where = where;
  if (!e.is_object())
    return script_error(p, where, "an entry must be a mapping");
  for (auto& [key, value] : e.items()) {
    auto at = where + "." + key;
    if (key == "agent") {
      if (!value.is_string())
        return script_error(p, at, "must be a string");
      out.agent = value.get<std::string>();
    } else if (key == "turn") {
      auto n = uint_of(p, at, value);
      if (!n)
        return n.error();
      out.turn = static_cast<uint32_t>(*n);
    } else if (key == "match") {
      if (!value.is_string())
        return script_error(p, at, "must be a regular expression (a string)");
      auto re = regex::compile(value.get<std::string>());
      if (!re)
        return script_error(p, at, message_of(re.error()));
      out.match = std::move(*re);
      out.match_text = value.get<std::string>();
    } else if (key == "default") {
      if (!value.is_boolean())
        return script_error(p, at, "must be true or false");
      out.is_default = value.get<bool>();
    } else if (key == "reply") {
      if (!value.is_object())
        return script_error(p, at, "must be a mapping (text, tool_calls, "
                                   "usage, delay_ms, error)");
      for (auto& [rk, rv] : value.items()) {
        auto rat = at + "." + rk;
        if (rk == "text") {
          out.text = rv.is_string() ? rv.get<std::string>() : dump_json(rv);
        } else if (rk == "tool_calls") {
          if (!rv.is_array())
            return script_error(p, rat, "must be a list of {name, arguments}");
          for (size_t i = 0; i < rv.size(); ++i) {
            const auto& c = rv[i];
            auto cat = rat + "." + std::to_string(i);
            if (!c.is_object() || !c.contains("name")
                || !c["name"].is_string())
              return script_error(p, cat, "a tool call needs a 'name'");
            if (c.contains("arguments") && !c["arguments"].is_object()
                && !c["arguments"].is_string())
              return script_error(p, cat + ".arguments",
                                  "must be a mapping (or a template)");
          }
          out.tool_calls = rv;
        } else if (rk == "usage") {
          if (!rv.is_object())
            return script_error(p, rat, "must be a mapping");
          if (auto i = rv.find("input_tokens"); i != rv.end()) {
            auto n = uint_of(p, rat + ".input_tokens", *i);
            if (!n)
              return n.error();
            out.input_tokens = *n;
          }
          if (auto i = rv.find("output_tokens"); i != rv.end()) {
            auto n = uint_of(p, rat + ".output_tokens", *i);
            if (!n)
              return n.error();
            out.output_tokens = *n;
          }
        } else if (rk == "delay_ms") {
          auto n = uint_of(p, rat, rv);
          if (!n)
            return n.error();
          out.delay_ms = *n;
        } else if (rk == "error") {
          if (!rv.is_string())
            return script_error(p, rat, "must be a string "
                                        "\"<code>: <message>\"");
          out.error = rv.get<std::string>();
        } else {
          return script_error(p, rat, "unknown key (known: text, tool_calls, "
                                      "usage, delay_ms, error)");
        }
      }
    } else {
      return script_error(p, at, "unknown key (known: agent, turn, match, "
                                 "default, reply)");
    }
  }
  if (!e.contains("reply"))
    return script_error(p, where, "an entry needs a 'reply'");
  return out;
}

// -- templates -----------------------------------------------------------------

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos)
    return {};
  auto e = s.find_last_not_of(" \t\n");
  return s.substr(b, e - b + 1);
}

json parse_or_text(const std::string& text) {
  auto j = try_parse_json(text);
  if (j.is_discarded())
    return text;
  return j;
}

/// What templates see: the request's conversation.
struct template_env {
  const llm_request& req;

  // The value of a name such as `last_tool_result`, `tool.echo.text`,
  // `last_user`, `agent`, `turn`; nullopt when unknown.
  std::optional<json> lookup(const std::string& name) const {
    if (name == "agent")
      return json(req.agent);
    if (name == "turn")
      return json(req.turn);
    if (name == "last_message")
      return req.messages.empty() ? json("")
                                  : json(req.messages.back().content);
    if (name == "last_user") {
      for (auto i = req.messages.rbegin(); i != req.messages.rend(); ++i)
        if (i->role == "user")
          return json(i->content);
      return json("");
    }
    if (name == "last_tool_result") {
      for (auto i = req.messages.rbegin(); i != req.messages.rend(); ++i)
        if (i->role == "tool")
          return parse_or_text(i->content);
      return json(nullptr);
    }
    if (name == "tool_results") {
      // The results since the last assistant message, in call order.
      json out = json::array();
      for (auto i = req.messages.rbegin(); i != req.messages.rend(); ++i) {
        if (i->role == "assistant")
          break;
        if (i->role == "tool")
          out.insert(out.begin(), parse_or_text(i->content));
      }
      return out;
    }
    if (name.rfind("tool.", 0) == 0) {
      auto rest = name.substr(5);
      auto dot = rest.find('.');
      auto tool = rest.substr(0, dot);
      for (auto i = req.messages.rbegin(); i != req.messages.rend(); ++i)
        if (i->role == "tool" && i->name == tool) {
          json v = parse_or_text(i->content);
          if (dot == std::string::npos)
            return v;
          // A dotted path into the result; numbers index arrays from 0.
          std::stringstream path{rest.substr(dot + 1)};
          std::string seg;
          const json* cur = &v;
          while (std::getline(path, seg, '.')) {
            if (cur->is_object() && cur->contains(seg))
              cur = &(*cur)[seg];
            else if (cur->is_array() && !seg.empty()
                     && seg.find_first_not_of("0123456789")
                          == std::string::npos
                     && std::stoul(seg) < cur->size())
              cur = &(*cur)[std::stoul(seg)];
            else
              return json(nullptr);
          }
          return *cur;
        }
      return json(nullptr);
    }
    return std::nullopt;
  }

  // `{{ name }}` is the value as JSON text; `{{ name | text }}` is a string
  // value without quotes.
  expected<std::string> render(const std::string& s,
                               const std::string& where) const {
    std::string out;
    size_t pos = 0;
    for (;;) {
      auto open = s.find("{{", pos);
      if (open == std::string::npos)
        break;
      auto close = s.find("}}", open + 2);
      if (close == std::string::npos)
        return make_error(errc::invalid_config,
                          where + ": a '{{' is not closed by '}}'");
      out.append(s, pos, open - pos);
      auto expr = trim(s.substr(open + 2, close - open - 2));
      bool as_text = false;
      if (auto bar = expr.find('|'); bar != std::string::npos) {
        as_text = trim(expr.substr(bar + 1)) == "text";
        expr = trim(expr.substr(0, bar));
      }
      auto v = lookup(expr);
      if (!v)
        return make_error(errc::invalid_config,
                          where + ": unknown template name '" + expr
                            + "' (known: last_tool_result, tool_results, "
                              "tool.<name>[.path], last_user, last_message, "
                              "agent, turn)");
      out += as_text && v->is_string() ? v->get<std::string>() : dump_json(*v);
      pos = close + 2;
    }
    out.append(s, pos, std::string::npos);
    return out;
  }

  // Strings that are exactly one `{{ name }}` become the value itself.
  expected<json> render_json(const json& tmpl, const std::string& where) const {
    if (tmpl.is_string()) {
      const auto& s = tmpl.get_ref<const std::string&>();
      auto t = trim(s);
      if (t.rfind("{{", 0) == 0 && t.find("}}") == t.size() - 2
          && t.find('|') == std::string::npos) {
        if (auto v = lookup(trim(t.substr(2, t.size() - 4))))
          return *v;
      }
      auto r = render(s, where);
      if (!r)
        return r.error();
      return json(*r);
    }
    if (tmpl.is_object()) {
      json out = json::object();
      for (auto& [k, v] : tmpl.items()) {
        auto r = render_json(v, where + "." + k);
        if (!r)
          return r;
        out[k] = std::move(*r);
      }
      return out;
    }
    if (tmpl.is_array()) {
      json out = json::array();
      for (size_t i = 0; i < tmpl.size(); ++i) {
        auto r = render_json(tmpl[i], where + "." + std::to_string(i));
        if (!r)
          return r;
        out.push_back(std::move(*r));
      }
      return out;
    }
    return tmpl;
  }
};

// -- the provider ----------------------------------------------------------------

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

uint64_t estimate_tokens(size_t chars) {
  return static_cast<uint64_t>((chars + 3) / 4);
}

class scripted_provider final : public provider {
public:
  scripted_provider(profile p, std::vector<entry> entries)
    : profile_(std::move(p)), entries_(std::move(entries)) {
  }

  const profile& settings() const override {
    return profile_;
  }

  // Matching and templates are pure computation (the script file is read
  // when the provider is made); only an entry's delay_ms waits.
  bool may_block() const override {
    return std::any_of(entries_.begin(), entries_.end(),
                       [](const entry& e) { return e.delay_ms > 0; });
  }

  expected<llm_response> complete(const llm_request& req,
                                  const call_context& ctx) override {
    auto start = now_us();
    const entry* hit = nullptr;
    const std::string last
      = req.messages.empty() ? std::string{} : req.messages.back().content;
    for (const auto& e : entries_) {
      if (e.is_default)
        continue;
      if (!e.agent.empty() && e.agent != req.agent)
        continue;
      if (e.turn != 0 && e.turn != req.turn)
        continue;
      if (e.match && !e.match->search(last))
        continue;
      hit = &e;
      break;
    }
    if (hit == nullptr)
      for (const auto& e : entries_)
        if (e.is_default
            && (e.agent.empty() || e.agent == req.agent)) {
          hit = &e;
          break;
        }
    if (hit == nullptr) {
      auto quoted = last.size() > 80 ? last.substr(0, 80) + "..." : last;
      return make_error(errc::invalid_config,
                        "llm profile " + profile_.name
                          + " (scripted): no script entry matches agent '"
                          + req.agent + "' turn " + std::to_string(req.turn)
                          + " (last message: \"" + quoted
                          + "\"); add an entry or a default one");
    }
    if (hit->delay_ms > 0)
      if (auto waited = wait(hit->delay_ms, ctx); !waited)
        return waited.error();
    if (!hit->error.empty()) {
      auto colon = hit->error.find(':');
      errc code = errc::unavailable;
      if (colon != std::string::npos
          && from_string(trim(hit->error.substr(0, colon)), code))
        return make_error(code, "llm profile " + profile_.name + ": "
                                  + trim(hit->error.substr(colon + 1)));
      return make_error(errc::unavailable,
                        "llm profile " + profile_.name + ": " + hit->error);
    }
    template_env env{req};
    llm_response res;
    res.message.role = "assistant";
    auto text = env.render(hit->text, "scripted entry " + hit->where
                                        + ".reply.text");
    if (!text)
      return text.error();
    res.message.content = std::move(*text);
    for (size_t i = 0; i < hit->tool_calls.size(); ++i) {
      const auto& c = hit->tool_calls[i];
      llm_tool_call call;
      call.name = c["name"].get<std::string>();
      // Ids are unique in the conversation, like a provider's.
      call.id = "call_" + std::to_string(req.turn) + "_" + std::to_string(i + 1);
      auto args = env.render_json(c.value("arguments", json::object()),
                                  "scripted entry " + hit->where
                                    + ".reply.tool_calls."
                                    + std::to_string(i) + ".arguments");
      if (!args)
        return args.error();
      // Arguments given as a string are the model's argument text, as
      // OpenAI's: a script can send malformed ones, as small models do.
      if (args->is_string())
        detail::set_arguments(
          call, std::string_view{args->get_ref<const std::string&>()});
      else
        detail::set_arguments(call, *args);
      res.message.tool_calls.push_back(std::move(call));
    }
    res.stop_reason = res.message.tool_calls.empty() ? "stop" : "tool_calls";
    size_t in_chars = 0;
    for (const auto& m : req.messages)
      in_chars += m.content.size();
    res.usage.input_tokens = hit->input_tokens.value_or(
      estimate_tokens(in_chars));
    res.usage.output_tokens = hit->output_tokens.value_or(
      estimate_tokens(res.message.content.size()));
    res.usage.cost_usd = cost_of(profile_, res.usage.input_tokens,
                                 res.usage.output_tokens);
    res.model = req.model.empty() ? profile_.model : req.model;
    if (res.model.empty())
      res.model = "scripted";
    if (req.stream && ctx.on_text) {
      // Word by word, as a streaming model would send it.
      const auto& s = res.message.content;
      size_t pos = 0;
      while (pos < s.size()) {
        auto next = s.find(' ', pos + 1);
        if (next == std::string::npos)
          next = s.size();
        ctx.on_text(std::string_view{s}.substr(pos, next - pos));
        pos = next;
      }
    }
    res.duration_us = now_us() - start;
    return res;
  }

private:
  expected<void> wait(uint64_t ms, const call_context& ctx) {
    using namespace std::chrono;
    auto end = steady_clock::now() + milliseconds{ms};
    while (steady_clock::now() < end) {
      if (ctx.cancel_flag && ctx.cancel_flag->load())
        return make_error(errc::cancelled,
                          "llm profile " + profile_.name + ": cancelled");
      if (ctx.deadline_us != 0 && now_us() >= ctx.deadline_us)
        return make_error(errc::timeout, "llm profile " + profile_.name
                                           + ": deadline passed");
      std::this_thread::sleep_for(milliseconds{5});
    }
    return {};
  }

  profile profile_;
  std::vector<entry> entries_;
};

} // namespace

expected<std::unique_ptr<provider>> make_scripted_provider(const profile& p) {
  json turns;
  const auto& s = p.settings;
  if (!s.is_object())
    return script_error(p, "", "must be a mapping with 'script' or 'turns'");
  for (auto& [key, value] : s.items())
    if (key != "script" && key != "turns")
      return script_error(p, key, "unknown key (known: script, turns)");
  if (auto i = s.find("turns"); i != s.end()) {
    turns = *i;
  } else if (auto f = s.find("script"); f != s.end()) {
    if (!f->is_string())
      return script_error(p, "script", "must be a file path");
    auto path = f->get<std::string>();
    auto doc = yaml::read_file(path);
    if (!doc)
      return script_error(p, "script", message_of(doc.error()));
    turns = doc->is_object() && doc->contains("turns") ? (*doc)["turns"]
                                                        : *doc;
  } else {
    // No script: a model that only says it has none, so an agent still runs.
    turns = json::array(
      {json{{"default", true},
            {"reply",
             {{"text", "(scripted profile '" + p.name
                         + "' has no script; set settings.script or "
                           "settings.turns)"}}}}});
  }
  if (!turns.is_array())
    return script_error(p, "turns", "must be a list of entries");
  std::vector<entry> entries;
  for (size_t i = 0; i < turns.size(); ++i) {
    auto e = parse_entry(p, turns[i], "turns." + std::to_string(i));
    if (!e)
      return e.error();
    entries.push_back(std::move(*e));
  }
  return std::unique_ptr<provider>{
    new scripted_provider(p, std::move(entries))};
}

} // namespace cadre::tools::llm
