// openai: any OpenAI-compatible Chat Completions server (OpenAI, vLLM,
// llama.cpp server, Ollama's /v1): POST {base_url}/chat/completions, tool
// calls with arguments as a JSON string, SSE streaming with tool-call
// pieces keyed by index.

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

/// Settings of an openai profile (`llm.profiles.<name>.<key>`).
struct openai_options {
  /// `max_tokens_field`: how llm_request::max_tokens is sent, as
  /// "max_completion_tokens" (OpenAI's current name, required by its
  /// reasoning models) or "max_tokens" (what vLLM, llama.cpp and Ollama
  /// read). Default: max_completion_tokens for api.openai.com, else
  /// max_tokens
  std::string max_tokens_field;
  /// `include_usage`: ask for the usage chunk when streaming
  /// (stream_options.include_usage). Default: true
  bool include_usage = true;
  /// `organization`: sent as OpenAI-Organization. Default: none
  std::string organization;
};

/// A tool call being put together from stream pieces.
struct call_parts {
  std::string id;
  std::string name;
  std::string arguments;
};

class openai_provider final : public http_provider {
public:
  openai_provider(profile p, openai_options opts)
    : http_provider(std::move(p)), opts_(std::move(opts)) {
  }

private:
  class reader_impl;

  std::string path() const override {
    return "/chat/completions";
  }
  json request_body(const llm_request& req,
                    const std::string& model) const override;
  void add_headers(net::http_headers& headers,
                   const std::string& key) const override {
    if (!key.empty())
      headers.add("Authorization", "Bearer " + key);
    if (!opts_.organization.empty())
      headers.add("OpenAI-Organization", opts_.organization);
  }
  std::unique_ptr<reply_reader> reader(const call& c) const override;
  expected<llm_response> parse_reply(const std::string& body,
                                     std::string_view secret) const;
  expected<llm_message> finish_calls(llm_message msg,
                                     const std::map<int64_t, call_parts>& parts)
    const;

  openai_options opts_;
};

json tool_call_json(const llm_tool_call& call) {
  const auto& args = call.arguments.is_null() ? json::object()
                                              : call.arguments.get();
  return json{{"id", call.id},
              {"type", "function"},
              {"function",
               {{"name", call.name}, {"arguments", dump_json(args)}}}};
}

json message_json(const llm_message& m) {
  if (m.role == "assistant") {
    json out{{"role", "assistant"}};
    // "content" may be null when the message carries tool_calls.
    if (m.content.empty() && !m.tool_calls.empty())
      out["content"] = nullptr;
    else
      out["content"] = m.content;
    if (!m.tool_calls.empty()) {
      json calls = json::array();
      for (const auto& c : m.tool_calls)
        calls.push_back(tool_call_json(c));
      out["tool_calls"] = std::move(calls);
    }
    return out;
  }
  if (m.role == "tool") {
    // Chat Completions has no error flag on tool results: say it in words.
    return json{{"role", "tool"},
                {"tool_call_id", m.tool_call_id},
                {"content", m.is_error ? "Error: " + m.content : m.content}};
  }
  return json{{"role", m.role}, {"content", m.content}};
}

json openai_provider::request_body(const llm_request& req,
                                   const std::string& model) const {
  json body{{"model", model}};
  json messages = json::array();
  for (const auto& m : req.messages)
    messages.push_back(message_json(m));
  body["messages"] = std::move(messages);
  if (!req.tools.empty()) {
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
  // Servers refuse tool_choice without tools.
  if (!req.tool_choice.empty() && !req.tools.empty()) {
    if (req.tool_choice == "auto" || req.tool_choice == "none"
        || req.tool_choice == "required")
      body["tool_choice"] = req.tool_choice;
    else
      body["tool_choice"] = json{{"type", "function"},
                                 {"function", {{"name", req.tool_choice}}}};
  }
  if (req.temperature >= 0)
    body["temperature"] = req.temperature;
  if (req.max_tokens > 0)
    body[opts_.max_tokens_field] = req.max_tokens;
  if (req.stream) {
    body["stream"] = true;
    if (opts_.include_usage)
      body["stream_options"] = json{{"include_usage", true}};
  }
  return body;
}

/// Normalizes finish_reason; a reply with calls is "tool_calls" whatever
/// the server said (some say "stop").
std::string stop_reason_of(const std::string& finish, bool has_calls) {
  if (has_calls)
    return "tool_calls";
  if (finish == "length" || finish == "content_filter")
    return finish;
  if (finish == "tool_calls" || finish == "function_call")
    return "tool_calls";
  return "stop";
}

/// Reads `usage` (prompt_tokens, completion_tokens) when it is an object.
void read_usage(const json& j, uint64_t& in, uint64_t& out) {
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object())
    return;
  auto num = [&](const char* key, uint64_t& dst) {
    auto i = u->find(key);
    if (i != u->end() && i->is_number_unsigned())
      dst = i->get<uint64_t>();
  };
  num("prompt_tokens", in);
  num("completion_tokens", out);
}

expected<llm_message>
openai_provider::finish_calls(llm_message msg,
                              const std::map<int64_t, call_parts>& parts)
  const {
  for (const auto& [index, part] : parts) {
    if (part.name.empty())
      return malformed(profile_, "tool call #" + std::to_string(index)
                                   + " has no function name",
                       part.arguments);
    llm_tool_call call;
    call.id = part.id.empty() ? "call_" + std::to_string(index) : part.id;
    call.name = part.name;
    set_arguments(call, std::string_view{part.arguments});
    msg.tool_calls.push_back(std::move(call));
  }
  return msg;
}

expected<llm_response>
openai_provider::parse_reply(const std::string& body,
                             std::string_view secret) const {
  auto doc = parse_json(body);
  if (!doc || !doc->is_object())
    return malformed(profile_, "not a JSON object", body, secret);
  if (auto e = doc->find("error"); e != doc->end() && !e->is_null())
    return stream_error(profile_, string_or_empty(*doc, "model"),
                        provider_code(body), provider_message(body, secret),
                        secret);
  auto choices = doc->find("choices");
  if (choices == doc->end() || !choices->is_array() || choices->empty()
      || !(*choices)[0].is_object())
    return malformed(profile_, "no choices[0]", body, secret);
  const auto& choice = (*choices)[0];
  auto m = choice.find("message");
  if (m == choice.end() || !m->is_object())
    return malformed(profile_, "choices[0] has no message", body, secret);
  llm_response out;
  out.message.role = "assistant";
  out.message.content = string_or_empty(*m, "content");
  if (out.message.content.empty())
    out.message.content = string_or_empty(*m, "refusal");
  std::map<int64_t, call_parts> parts;
  if (auto calls = m->find("tool_calls");
      calls != m->end() && !calls->is_null()) {
    if (!calls->is_array())
      return malformed(profile_, "message.tool_calls is not an array", body,
                       secret);
    int64_t i = 0;
    for (const auto& c : *calls) {
      auto fn = c.is_object() ? c.find("function") : c.end();
      if (!c.is_object() || fn == c.end() || !fn->is_object())
        return malformed(profile_, "a tool call has no function", dump_json(c),
                         secret);
      call_parts part;
      part.id = string_or_empty(c, "id");
      part.name = string_or_empty(*fn, "name");
      auto args = fn->find("arguments");
      if (args != fn->end() && args->is_string())
        part.arguments = args->get<std::string>();
      else if (args != fn->end() && args->is_object())
        part.arguments = dump_json(*args); // lenient: an object, as Ollama's
      else if (args != fn->end() && !args->is_null())
        return malformed(profile_, "tool call arguments are not a string",
                         dump_json(c), secret);
      parts.emplace(i++, std::move(part));
    }
  }
  auto msg = finish_calls(std::move(out.message), parts);
  if (!msg)
    return msg.error();
  out.message = std::move(*msg);
  out.stop_reason = stop_reason_of(string_or_empty(choice, "finish_reason"),
                                   !out.message.tool_calls.empty());
  uint64_t in = 0, used = 0;
  read_usage(*doc, in, used);
  out.usage = usage_of(profile_, in, used);
  out.model = string_or_empty(*doc, "model");
  return out;
}

/// Reads an SSE stream of chunks, or a whole completion.
class openai_provider::reader_impl final : public sse_reader {
public:
  reader_impl(const openai_provider& self, const call& c)
    : self_(self), call_(c) {
  }

  expected<llm_response> finish(bool streamed,
                                const std::string& body) override;

private:
  bool on_event(const std::string& data) override;

  const openai_provider& self_;
  call call_;
  std::string text_;
  std::map<int64_t, call_parts> calls_;
  std::string finish_reason_;
  std::string model_;
  uint64_t input_ = 0;
  uint64_t output_ = 0;
  bool done_ = false;
};

bool openai_provider::reader_impl::on_event(const std::string& data) {
  const auto& prof = self_.profile_;
  const auto& key = call_.key;
  if (done_)
    return true; // nothing is expected after [DONE]
  if (data == "[DONE]") {
    done_ = true;
    return true;
  }
  auto chunk = parse_json(data);
  if (!chunk || !chunk->is_object()) {
    failure = malformed(prof, "a stream chunk is not JSON", data, key);
    return false;
  }
  if (auto e = chunk->find("error"); e != chunk->end() && !e->is_null()) {
    failure = stream_error(prof, call_.model, provider_code(data),
                           provider_message(data, key), key);
    return false;
  }
  if (model_.empty())
    model_ = string_or_empty(*chunk, "model");
  read_usage(*chunk, input_, output_);
  auto choices = chunk->find("choices");
  if (choices == chunk->end() || !choices->is_array())
    return true;
  for (const auto& choice : *choices) {
    if (!choice.is_object())
      continue;
    if (auto n = choice.find("index");
        n != choice.end() && n->is_number_integer() && *n != 0)
      continue; // only the first choice is read
    if (auto f = choice.find("finish_reason");
        f != choice.end() && f->is_string())
      finish_reason_ = f->get<std::string>();
    auto delta = choice.find("delta");
    if (delta == choice.end() || !delta->is_object())
      continue;
    auto piece = string_or_empty(*delta, "content");
    if (!piece.empty()) {
      text_ += piece;
      if (call_.ctx.on_text)
        call_.ctx.on_text(piece);
    }
    auto calls = delta->find("tool_calls");
    if (calls == delta->end() || !calls->is_array())
      continue;
    for (const auto& c : *calls) {
      if (!c.is_object())
        continue;
      auto index = c.find("index");
      if (index == c.end() || !index->is_number_integer()) {
        failure = malformed(prof, "a tool call piece has no index",
                            dump_json(c), key);
        return false;
      }
      auto& part = calls_[index->get<int64_t>()];
      if (auto id = string_or_empty(c, "id"); !id.empty())
        part.id = id;
      auto fn = c.find("function");
      if (fn == c.end() || !fn->is_object())
        continue;
      // The name comes whole in the first piece; later pieces that
      // repeat it must not double it.
      if (auto name = string_or_empty(*fn, "name");
          !name.empty() && part.name.empty())
        part.name = name;
      if (auto args = fn->find("arguments"); args != fn->end()) {
        if (args->is_string())
          part.arguments += args->get<std::string>();
        else if (args->is_object())
          part.arguments += dump_json(*args);
      }
    }
  }
  return true;
}

expected<llm_response>
openai_provider::reader_impl::finish(bool streamed, const std::string& body) {
  if (!streamed)
    return self_.parse_reply(body, call_.key);
  end_of_stream();
  if (failure)
    return *failure;
  if (!done_ && finish_reason_.empty())
    return profile_error(self_.profile_, errc::tool_failed,
                         "malformed reply: the stream ended before the "
                         "reply was complete (no finish_reason and no "
                         "[DONE])");
  llm_response out;
  out.message.role = "assistant";
  out.message.content = std::move(text_);
  auto msg = self_.finish_calls(std::move(out.message), calls_);
  if (!msg)
    return msg.error();
  out.message = std::move(*msg);
  out.stop_reason = stop_reason_of(finish_reason_,
                                   !out.message.tool_calls.empty());
  out.usage = usage_of(self_.profile_, input_, output_);
  out.model = std::move(model_);
  return out;
}

std::unique_ptr<http_provider::reply_reader>
openai_provider::reader(const call& c) const {
  return std::make_unique<reader_impl>(*this, c);
}

} // namespace

expected<std::unique_ptr<provider>> make_openai_provider(const profile& p) {
  if (auto ok = check_settings(p, {"max_tokens_field", "include_usage",
                                   "organization"});
      !ok)
    return ok.error();
  profile prof = p;
  if (prof.base_url.empty())
    prof.base_url = default_base_url("openai");
  openai_options opts;
  opts.max_tokens_field = prof.base_url.find("://api.openai.com")
                              != std::string::npos
                            ? "max_completion_tokens"
                            : "max_tokens";
  const auto& s = prof.settings;
  if (auto i = s.find("max_tokens_field"); i != s.end() && !i->is_null()) {
    if (!i->is_string()
        || (*i != "max_tokens" && *i != "max_completion_tokens"))
      return setting_error(prof, "max_tokens_field",
                           "must be \"max_tokens\" or "
                           "\"max_completion_tokens\"");
    opts.max_tokens_field = i->get<std::string>();
  }
  if (auto i = s.find("include_usage"); i != s.end() && !i->is_null()) {
    if (!i->is_boolean())
      return setting_error(prof, "include_usage", "must be true or false");
    opts.include_usage = i->get<bool>();
  }
  if (auto i = s.find("organization"); i != s.end() && !i->is_null()) {
    if (!i->is_string())
      return setting_error(prof, "organization", "must be a string");
    opts.organization = i->get<std::string>();
  }
  return std::unique_ptr<provider>{
    std::make_unique<openai_provider>(std::move(prof), std::move(opts))};
}

} // namespace cadre::tools::llm
