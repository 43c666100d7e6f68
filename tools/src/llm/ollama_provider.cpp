// ollama: Ollama's native chat API, POST {base_url}/api/chat: tool-call
// arguments as JSON objects, NDJSON streaming that ends with `done: true`
// (token counts in prompt_eval_count and eval_count), and `{"error": ...}`
// lines inside a 200 stream.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "cadre/tools/llm/provider.hpp"
#include "cadre/tools/net/http_client.hpp"
#include "llm/http_provider.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools::llm {

namespace {

using namespace detail;

/// Settings of an ollama profile (`llm.profiles.<name>.<key>`).
struct ollama_options {
  /// `options`: model parameters sent as `options` (e.g. num_ctx, top_p);
  /// the request's temperature and max_tokens (as num_predict) win.
  /// Default: {}
  json options = json::object();
  /// `keep_alive`: how long the model stays loaded, e.g. "5m" or 0.
  /// Default: Ollama's (5m)
  json keep_alive;
  /// `think`: for thinking models, true/false or "low"/"medium"/"high".
  /// Default: Ollama's
  json think;
};

class ollama_provider final : public http_provider {
public:
  ollama_provider(profile p, ollama_options opts)
    : http_provider(std::move(p)), opts_(std::move(opts)) {
  }

private:
  class reader_impl;

  std::string path() const override {
    return "/api/chat";
  }
  json request_body(const llm_request& req,
                    const std::string& model) const override;
  void add_headers(net::http_headers& headers,
                   const std::string& key) const override {
    // Only ollama.com (cloud) wants a key; a local server needs none.
    if (!key.empty())
      headers.add("Authorization", "Bearer " + key);
  }
  std::unique_ptr<reply_reader> reader(const call& c) const override;

  ollama_options opts_;
};

json ollama_provider::request_body(const llm_request& req,
                                   const std::string& model) const {
  json body{{"model", model}};
  json messages = json::array();
  // Tool results name their tool; find it from the call when missing.
  std::map<std::string, std::string> call_names;
  for (const auto& m : req.messages) {
    json out{{"role", m.role}, {"content", m.content}};
    if (m.role == "assistant" && !m.tool_calls.empty()) {
      json calls = json::array();
      for (size_t i = 0; i < m.tool_calls.size(); ++i) {
        const auto& c = m.tool_calls[i];
        call_names[c.id] = c.name;
        json call{{"type", "function"},
                  {"function",
                   {{"index", i},
                    {"name", c.name},
                    {"arguments", c.arguments.is_null() ? json::object()
                                                        : c.arguments.get()}}}};
        if (!c.id.empty())
          call["id"] = c.id;
        calls.push_back(std::move(call));
      }
      out["tool_calls"] = std::move(calls);
    }
    if (m.role == "tool") {
      auto name = m.name;
      if (name.empty())
        if (auto i = call_names.find(m.tool_call_id); i != call_names.end())
          name = i->second;
      if (!name.empty())
        out["tool_name"] = name;
      out["tool_call_id"] = m.tool_call_id;
      // The native API has no error flag on tool results: say it in words.
      if (m.is_error)
        out["content"] = "Error: " + m.content;
    }
    messages.push_back(std::move(out));
  }
  body["messages"] = std::move(messages);
  // No tool_choice in the native API; "none" is honoured by offering none.
  if (!req.tools.empty() && req.tool_choice != "none") {
    json tools = json::array();
    for (const auto& spec : req.tools) {
      auto t = offer(spec);
      json fn{{"name", t.name}};
      if (!t.description.empty())
        fn["description"] = t.description;
      fn["parameters"] = std::move(t.parameters);
      tools.push_back(json{{"type", "function"}, {"function", std::move(fn)}});
    }
    body["tools"] = std::move(tools);
  }
  json options = opts_.options;
  if (req.temperature >= 0)
    options["temperature"] = req.temperature;
  if (req.max_tokens > 0)
    options["num_predict"] = req.max_tokens;
  if (!options.empty())
    body["options"] = std::move(options);
  if (!opts_.keep_alive.is_null())
    body["keep_alive"] = opts_.keep_alive;
  if (!opts_.think.is_null())
    body["think"] = opts_.think;
  // Ollama streams unless told not to.
  body["stream"] = req.stream;
  return body;
}

/// What a reply is made of, from one object (non-streaming) or many lines.
struct reply_state {
  std::string text;
  std::vector<llm_tool_call> calls;
  std::string done_reason;
  std::string model;
  uint64_t input = 0;
  uint64_t output = 0;
  bool done = false;
  std::optional<caf::error> failure;
};

/// Folds one response object (a whole reply or one NDJSON line) into `st`;
/// false when it is an error or malformed (st.failure says which).
bool fold(const profile& p, const std::string& model, std::string_view text,
          std::string_view secret, reply_state& st,
          const std::function<void(std::string_view)>& on_text) {
  auto doc = parse_json(text);
  if (!doc || !doc->is_object()) {
    st.failure = malformed(p, "a reply line is not a JSON object", text,
                           secret);
    return false;
  }
  if (auto e = doc->find("error"); e != doc->end() && !e->is_null()) {
    st.failure = stream_error(p, model, provider_code(text),
                              provider_message(text, secret), secret);
    return false;
  }
  if (st.model.empty())
    st.model = string_or_empty(*doc, "model");
  if (auto m = doc->find("message"); m != doc->end() && m->is_object()) {
    auto piece = string_or_empty(*m, "content");
    if (!piece.empty()) {
      st.text += piece;
      if (on_text)
        on_text(piece);
    }
    auto calls = m->find("tool_calls");
    if (calls != m->end() && !calls->is_null()) {
      if (!calls->is_array()) {
        st.failure = malformed(p, "message.tool_calls is not an array",
                               text, secret);
        return false;
      }
      for (const auto& c : *calls) {
        auto fn = c.is_object() ? c.find("function") : c.end();
        if (!c.is_object() || fn == c.end() || !fn->is_object()
            || string_or_empty(*fn, "name").empty()) {
          st.failure = malformed(p, "a tool call has no function name",
                                 dump_json(c), secret);
          return false;
        }
        llm_tool_call call;
        call.name = string_or_empty(*fn, "name");
        auto args_it = fn->find("arguments");
        json raw = args_it == fn->end() ? json{} : *args_it;
        // Arguments are an object; a string of JSON is accepted too.
        if (raw.is_string())
          set_arguments(call, std::string_view{
                                raw.get_ref<const std::string&>()});
        else
          set_arguments(call, raw);
        call.id = string_or_empty(c, "id");
        if (call.id.empty())
          call.id = "call_" + std::to_string(st.calls.size());
        st.calls.push_back(std::move(call));
      }
    }
  }
  if (auto d = doc->find("done"); d != doc->end() && d->is_boolean()
                                  && d->get<bool>()) {
    st.done = true;
    st.done_reason = string_or_empty(*doc, "done_reason");
    auto num = [&](const char* key, uint64_t& dst) {
      auto i = doc->find(key);
      if (i != doc->end() && i->is_number_unsigned())
        dst = i->get<uint64_t>();
    };
    num("prompt_eval_count", st.input);
    num("eval_count", st.output);
  }
  return true;
}

/// Reads NDJSON lines, or one whole object, into a reply_state.
class ollama_provider::reader_impl final : public reply_reader {
public:
  reader_impl(const ollama_provider& self, const call& c)
    : self_(self), call_(c), lines_([this](std::string_view line) {
        if (st_.done)
          return true; // nothing is expected after done
        return fold_line(line, call_.ctx.on_text);
      }) {
  }

  bool feed(std::string_view piece) override {
    return lines_.feed(piece);
  }

  expected<llm_response> finish(bool streamed,
                                const std::string& body) override;

private:
  bool fold_line(std::string_view text,
                 const std::function<void(std::string_view)>& on_text) {
    auto ok = fold(self_.profile_, call_.model, text, call_.key, st_,
                   on_text);
    if (!ok)
      failure = st_.failure;
    return ok;
  }

  const ollama_provider& self_;
  call call_;
  reply_state st_;
  line_splitter lines_;
};

expected<llm_response>
ollama_provider::reader_impl::finish(bool streamed, const std::string& body) {
  const auto& prof = self_.profile_;
  if (streamed) {
    lines_.finish();
  } else if (!fold_line(body, nullptr)) {
    return *st_.failure;
  }
  if (st_.failure)
    return *st_.failure;
  if (!st_.done)
    return profile_error(prof, errc::tool_failed,
                         streamed
                           ? "malformed reply: the stream ended before "
                             "a line with \"done\": true"
                           : "malformed reply: \"done\" is not true: "
                               + quote(body, call_.key));
  llm_response out;
  out.message.role = "assistant";
  out.message.content = std::move(st_.text);
  out.message.tool_calls = std::move(st_.calls);
  // Ollama ends a tool-calling turn with done_reason "stop".
  if (!out.message.tool_calls.empty())
    out.stop_reason = "tool_calls";
  else if (st_.done_reason == "length")
    out.stop_reason = "length";
  else
    out.stop_reason = "stop";
  out.usage = usage_of(prof, st_.input, st_.output);
  out.model = st_.model;
  return out;
}

std::unique_ptr<http_provider::reply_reader>
ollama_provider::reader(const call& c) const {
  return std::make_unique<reader_impl>(*this, c);
}

} // namespace

expected<std::unique_ptr<provider>> make_ollama_provider(const profile& p) {
  if (auto ok = check_settings(p, {"options", "keep_alive", "think"}); !ok)
    return ok.error();
  profile prof = p;
  if (prof.base_url.empty())
    prof.base_url = default_base_url("ollama");
  ollama_options opts;
  const auto& s = prof.settings;
  if (auto i = s.find("options"); i != s.end() && !i->is_null()) {
    if (!i->is_object())
      return setting_error(prof, "options",
                           "must be an object of model parameters such as "
                           "{num_ctx: 8192}");
    opts.options = *i;
  }
  if (auto i = s.find("keep_alive"); i != s.end() && !i->is_null()) {
    if (!i->is_string() && !i->is_number())
      return setting_error(prof, "keep_alive",
                           "must be a duration string such as \"5m\" or a "
                           "number of seconds");
    opts.keep_alive = *i;
  }
  if (auto i = s.find("think"); i != s.end() && !i->is_null()) {
    if (!i->is_boolean() && !i->is_string())
      return setting_error(prof, "think",
                           "must be true, false, \"low\", \"medium\" or "
                           "\"high\"");
    opts.think = *i;
  }
  return std::unique_ptr<provider>{
    std::make_unique<ollama_provider>(std::move(prof), std::move(opts))};
}

} // namespace cadre::tools::llm
