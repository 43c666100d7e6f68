// anthropic: the Messages API, POST {base_url}/v1/messages with x-api-key
// and anthropic-version: system prompt as a top-level field, content blocks
// text / tool_use / tool_result, and SSE events whose tool input arrives as
// partial JSON per content block index.

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

/// Settings of an anthropic profile (`llm.profiles.<name>.<key>`).
struct anthropic_options {
  /// `version`: the anthropic-version header. Default: "2023-06-01"
  std::string version = "2023-06-01";
  /// `max_tokens`: sent when the request sets none (the API requires
  /// one). Default: 4096
  uint32_t max_tokens = 4096;
  /// `beta`: an anthropic-beta header value. Default: none
  std::string beta;
};

class anthropic_provider final : public http_provider {
public:
  anthropic_provider(profile p, anthropic_options opts)
    : http_provider(std::move(p)), opts_(std::move(opts)) {
  }

private:
  class reader_impl;

  std::string path() const override {
    return "/v1/messages";
  }
  bool key_required() const override {
    return true;
  }
  json request_body(const llm_request& req,
                    const std::string& model) const override;
  void add_headers(net::http_headers& headers,
                   const std::string& key) const override {
    headers.add("x-api-key", key);
    headers.add("anthropic-version", opts_.version);
    if (!opts_.beta.empty())
      headers.add("anthropic-beta", opts_.beta);
  }
  std::unique_ptr<reply_reader> reader(const call& c) const override;

  anthropic_options opts_;
};

json anthropic_provider::request_body(const llm_request& req,
                                      const std::string& model) const {
  json body{{"model", model},
            {"max_tokens",
             req.max_tokens > 0 ? req.max_tokens : opts_.max_tokens}};
  std::string system;
  json messages = json::array();
  for (const auto& m : req.messages) {
    if (m.role == "system") {
      // No system role in the Messages API: one top-level field.
      if (!system.empty())
        system += "\n\n";
      system += m.content;
      continue;
    }
    json blocks = json::array();
    std::string role = m.role == "assistant" ? "assistant" : "user";
    if (m.role == "tool") {
      json result{{"type", "tool_result"},
                  {"tool_use_id", m.tool_call_id},
                  {"content", m.content}};
      if (m.is_error)
        result["is_error"] = true;
      blocks.push_back(std::move(result));
    } else {
      // The API refuses empty text blocks.
      if (!m.content.empty())
        blocks.push_back(json{{"type", "text"}, {"text", m.content}});
      for (const auto& c : m.tool_calls)
        blocks.push_back(json{{"type", "tool_use"},
                              {"id", c.id},
                              {"name", c.name},
                              {"input", c.arguments.is_null()
                                          ? json::object()
                                          : c.arguments.get()}});
      if (blocks.empty())
        blocks.push_back(json{{"type", "text"}, {"text", m.content}});
    }
    // Turns alternate: consecutive tool results (and text after them) go
    // into one user message.
    if (!messages.empty() && messages.back()["role"] == role) {
      for (auto& b : blocks)
        messages.back()["content"].push_back(std::move(b));
    } else {
      messages.push_back(json{{"role", role}, {"content", std::move(blocks)}});
    }
  }
  if (!system.empty())
    body["system"] = system;
  body["messages"] = std::move(messages);
  // "none" offers no tools, as the other providers do; the API also takes
  // tool_choice none, but only alongside tools.
  if (!req.tools.empty()) {
    json tools = json::array();
    for (const auto& spec : req.tools) {
      auto t = offer(spec);
      json tool{{"name", t.name}};
      if (!t.description.empty())
        tool["description"] = t.description;
      tool["input_schema"] = std::move(t.parameters);
      tools.push_back(std::move(tool));
    }
    body["tools"] = std::move(tools);
    if (req.tool_choice == "auto")
      body["tool_choice"] = json{{"type", "auto"}};
    else if (req.tool_choice == "none")
      body["tool_choice"] = json{{"type", "none"}};
    else if (req.tool_choice == "required")
      body["tool_choice"] = json{{"type", "any"}};
    else if (!req.tool_choice.empty())
      body["tool_choice"] = json{{"type", "tool"}, {"name", req.tool_choice}};
  }
  if (req.temperature >= 0)
    body["temperature"] = req.temperature;
  if (req.stream)
    body["stream"] = true;
  return body;
}

std::string stop_reason_of(const std::string& reason, bool has_calls) {
  if (reason == "tool_use" || has_calls)
    return "tool_calls";
  if (reason == "max_tokens" || reason == "model_context_window_exceeded")
    return "length";
  if (reason == "refusal")
    return "content_filter";
  return "stop"; // end_turn, stop_sequence, pause_turn
}

/// Adds what a `usage` object says: input counts all input, cached or not.
void read_usage(const json& j, uint64_t& in, uint64_t& out) {
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object())
    return;
  auto num = [&](const char* key) -> std::optional<uint64_t> {
    auto i = u->find(key);
    if (i != u->end() && i->is_number_unsigned())
      return i->get<uint64_t>();
    return std::nullopt;
  };
  auto input = num("input_tokens");
  if (input) {
    in = *input;
    for (const char* k : {"cache_creation_input_tokens",
                          "cache_read_input_tokens"})
      in += num(k).value_or(0);
  }
  // message_delta's output_tokens is cumulative: replace, never add.
  if (auto o = num("output_tokens"))
    out = *o;
}

/// One content block of a streamed reply.
struct block {
  std::string type;
  std::string text;
  std::string id;
  std::string name;
  std::string partial_json;
  bool stopped = false;
};

/// Reads an SSE stream of events, or a whole message.
class anthropic_provider::reader_impl final : public sse_reader {
public:
  reader_impl(const anthropic_provider& self, const call& c)
    : self_(self), call_(c) {
  }

  expected<llm_response> finish(bool streamed,
                                const std::string& body) override;

private:
  bool on_event(const std::string& data) override;

  bool fail(caf::error err) {
    failure = std::move(err);
    return false;
  }

  const anthropic_provider& self_;
  call call_;
  std::map<int64_t, block> blocks;
  std::string stop_reason;
  std::string model;
  uint64_t input = 0;
  uint64_t output = 0;
  bool started = false;
  bool stopped = false;
};

bool anthropic_provider::reader_impl::on_event(const std::string& data) {
  const auto& prof = self_.profile_;
  const auto& key = call_.key;
  if (stopped)
    return true;
  auto ev = parse_json(data);
  if (!ev || !ev->is_object())
    return fail(malformed(prof, "an event is not JSON", data, key));
  // The payload's type names the event (as the `event:` line does).
  auto type = string_or_empty(*ev, "type");
  if (type == "ping")
    return true;
  if (type == "error") {
    auto e = ev->find("error");
    std::string etype, msg;
    if (e != ev->end() && e->is_object()) {
      etype = string_or_empty(*e, "type");
      msg = string_or_empty(*e, "message");
    }
    return fail(stream_error(prof, call_.model, etype, msg, key));
  }
  if (type == "message_start") {
    started = true;
    if (auto m = ev->find("message"); m != ev->end() && m->is_object()) {
      model = string_or_empty(*m, "model");
      read_usage(*m, input, output);
    }
    return true;
  }
  if (type == "message_delta") {
    if (auto d = ev->find("delta"); d != ev->end() && d->is_object())
      if (auto r = string_or_empty(*d, "stop_reason"); !r.empty())
        stop_reason = r;
    uint64_t in = input;
    read_usage(*ev, in, output);
    // input_tokens in message_delta is optional; keep message_start's.
    if (in > 0)
      input = in;
    return true;
  }
  if (type == "message_stop") {
    stopped = true;
    return true;
  }
  auto index_it = ev->find("index");
  if (type.rfind("content_block_", 0) != 0)
    return true; // new event types are ignored
  if (index_it == ev->end() || !index_it->is_number_integer())
    return fail(malformed(prof, type + " has no index", data, key));
  auto index = index_it->get<int64_t>();
  if (type == "content_block_start") {
    auto cb = ev->find("content_block");
    if (cb == ev->end() || !cb->is_object())
      return fail(malformed(prof, "content_block_start has no block",
                            data, key));
    auto& b = blocks[index];
    b.type = string_or_empty(*cb, "type");
    b.text = string_or_empty(*cb, "text");
    b.id = string_or_empty(*cb, "id");
    b.name = string_or_empty(*cb, "name");
    return true;
  }
  auto found = blocks.find(index);
  if (found == blocks.end())
    return fail(malformed(prof, type + " for a block that did not start",
                          data, key));
  auto& b = found->second;
  if (type == "content_block_delta") {
    auto d = ev->find("delta");
    if (d == ev->end() || !d->is_object())
      return fail(malformed(prof, "content_block_delta has no delta",
                            data, key));
    auto dtype = string_or_empty(*d, "type");
    if (dtype == "text_delta") {
      auto piece = string_or_empty(*d, "text");
      b.text += piece;
      if (call_.ctx.on_text && !piece.empty())
        call_.ctx.on_text(piece);
    } else if (dtype == "input_json_delta") {
      b.partial_json += string_or_empty(*d, "partial_json");
    }
    return true;
  }
  if (type == "content_block_stop") {
    b.stopped = true;
    return true;
  }
  return true;
}

expected<llm_response>
anthropic_provider::reader_impl::finish(bool streamed,
                                        const std::string& body) {
  const auto& prof = self_.profile_;
  const auto& key = call_.key;
  llm_response out;
  out.message.role = "assistant";
  if (streamed) {
    end_of_stream();
    if (failure)
      return *failure;
    if (!started || !stopped)
      return profile_error(prof, errc::tool_failed,
                           "malformed reply: the event stream ended before "
                           "message_stop");
    for (auto& [index, b] : blocks) {
      if (b.type == "text") {
        out.message.content += b.text;
      } else if (b.type == "tool_use") {
        if (!b.stopped)
          return malformed(prof,
                           "tool_use block without content_block_stop",
                           b.partial_json, key);
        llm_tool_call call;
        call.id = b.id;
        call.name = b.name;
        set_arguments(call, std::string_view{b.partial_json});
        out.message.tool_calls.push_back(std::move(call));
      }
    }
    out.stop_reason = stop_reason_of(stop_reason,
                                     !out.message.tool_calls.empty());
    out.usage = usage_of(prof, input, output);
    out.model = model;
  } else {
    auto doc = parse_json(body);
    if (!doc || !doc->is_object())
      return malformed(prof, "not a JSON object", body, key);
    if (auto e = doc->find("error"); e != doc->end() && !e->is_null())
      return stream_error(prof, call_.model, provider_code(body),
                          provider_message(body, key), key);
    auto content = doc->find("content");
    if (content == doc->end() || !content->is_array())
      return malformed(prof, "no content array", body, key);
    for (const auto& b : *content) {
      auto type = b.is_object() ? string_or_empty(b, "type") : "";
      if (type == "text") {
        out.message.content += string_or_empty(b, "text");
      } else if (type == "tool_use") {
        llm_tool_call call;
        call.id = string_or_empty(b, "id");
        call.name = string_or_empty(b, "name");
        if (call.id.empty() || call.name.empty())
          return malformed(prof, "a tool_use block has no id or name",
                           dump_json(b), key);
        auto in = b.find("input");
        set_arguments(call, in == b.end() ? json{} : *in);
        out.message.tool_calls.push_back(std::move(call));
      }
      // thinking and server-tool blocks are not part of llm_message
    }
    out.stop_reason = stop_reason_of(string_or_empty(*doc, "stop_reason"),
                                     !out.message.tool_calls.empty());
    uint64_t in = 0, used = 0;
    read_usage(*doc, in, used);
    out.usage = usage_of(prof, in, used);
    out.model = string_or_empty(*doc, "model");
  }
  return out;
}

std::unique_ptr<http_provider::reply_reader>
anthropic_provider::reader(const call& c) const {
  return std::make_unique<reader_impl>(*this, c);
}

} // namespace

expected<std::unique_ptr<provider>> make_anthropic_provider(const profile& p) {
  if (auto ok = check_settings(p, {"version", "max_tokens", "beta"}); !ok)
    return ok.error();
  profile prof = p;
  if (prof.base_url.empty())
    prof.base_url = default_base_url("anthropic");
  if (prof.api_key_env.empty())
    return setting_error(prof, "api_key_env",
                         "an anthropic profile needs the name of the "
                         "environment variable that holds the API key");
  anthropic_options opts;
  const auto& s = prof.settings;
  for (const char* k : {"version", "beta"}) {
    auto i = s.find(k);
    if (i == s.end() || i->is_null())
      continue;
    if (!i->is_string() || i->get<std::string>().empty())
      return setting_error(prof, k, "must be a non-empty string");
    (std::string_view{k} == "version" ? opts.version : opts.beta)
      = i->get<std::string>();
  }
  if (auto i = s.find("max_tokens"); i != s.end() && !i->is_null()) {
    if (!i->is_number_integer() || i->get<int64_t>() < 1
        || i->get<int64_t>() > 1'000'000)
      return setting_error(prof, "max_tokens",
                           "must be an integer in [1, 1000000]");
    opts.max_tokens = static_cast<uint32_t>(i->get<int64_t>());
  }
  return std::unique_ptr<provider>{
    std::make_unique<anthropic_provider>(std::move(prof), std::move(opts))};
}

} // namespace cadre::tools::llm
