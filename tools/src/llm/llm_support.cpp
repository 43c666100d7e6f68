#include "llm/llm_support.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <set>

#include "net/net_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools::llm::detail {

namespace {

std::string lower(std::string_view x) {
  std::string out{x};
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool has(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

/// Wording providers use for a prompt over the context window: OpenAI's
/// code, vLLM's and llama.cpp's messages, Anthropic's "prompt is too long".
bool context_overflow(std::string_view code, std::string_view message) {
  auto m = lower(message);
  return code == "context_length_exceeded" || has(m, "context length")
         || has(m, "context window") || has(m, "maximum context")
         || has(m, "context size") || has(m, "prompt is too long")
         || has(m, "exceeds the available context")
         || has(m, "too many tokens");
}

bool model_missing(std::string_view code, std::string_view message) {
  auto m = lower(message);
  return code == "model_not_found"
         || (has(m, "model")
             && (has(m, "not found") || has(m, "does not exist")));
}

std::string suffix_attempts(uint32_t attempts) {
  if (attempts <= 1)
    return {};
  return " after " + std::to_string(attempts) + " attempts";
}

} // namespace

std::string default_base_url(std::string_view kind) {
  if (kind == "openai")
    return "https://api.openai.com/v1";
  if (kind == "ollama")
    return "http://127.0.0.1:11434";
  if (kind == "anthropic")
    return "https://api.anthropic.com";
  return {};
}

std::string join_url(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/')
    base.remove_suffix(1);
  return std::string{base} + std::string{path};
}

int64_t wall_now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

caf::error profile_error(const profile& p, errc code, std::string what) {
  return make_error(code, "llm profile '" + p.name + "': " + std::move(what));
}

caf::error setting_error(const profile& p, std::string_view key,
                         std::string_view what) {
  std::string msg = "llm.profiles." + p.name;
  if (!key.empty()) {
    msg += '.';
    msg += key;
  }
  msg += ": ";
  msg += what;
  return make_error(errc::invalid_config, std::move(msg));
}

expected<void> check_settings(const profile& p,
                              std::initializer_list<std::string_view> known) {
  if (!p.settings.is_object())
    return setting_error(p, "", "settings must be an object");
  for (const auto& [key, value] : p.settings.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end())
      continue;
    std::string list;
    for (auto k : known)
      list += (list.empty() ? "" : ", ") + std::string{k};
    return setting_error(p, key,
                         "unknown setting (the settings of kind " + p.kind
                           + " are: "
                           + (list.empty() ? std::string{"none"} : list)
                           + ")");
  }
  return {};
}

expected<std::string> api_key(const profile& p, bool required) {
  if (p.api_key_env.empty()) {
    if (required)
      return setting_error(p, "api_key_env",
                           "a " + p.kind
                             + " profile needs the name of the environment "
                               "variable that holds the API key");
    return std::string{};
  }
  const char* value = std::getenv(p.api_key_env.c_str());
  if (value == nullptr || *value == 0)
    return profile_error(p, errc::invalid_config,
                         "the environment variable " + p.api_key_env
                           + " (llm.profiles." + p.name
                           + ".api_key_env) is not set or empty");
  return std::string{value};
}

expected<std::string> model_of(const profile& p, const llm_request& req) {
  if (!req.model.empty())
    return req.model;
  if (!p.model.empty())
    return p.model;
  return setting_error(p, "model",
                       "no model configured, and the request names none");
}

expected<void> check_request(const profile& p, const llm_request& req) {
  auto bad = [&](size_t i, std::string_view field, std::string what) {
    return profile_error(p, errc::invalid_input,
                         "request /messages/" + std::to_string(i) + "/"
                           + std::string{field} + ": " + std::move(what));
  };
  if (req.messages.empty())
    return profile_error(p, errc::invalid_input,
                         "request /messages: must not be empty");
  for (size_t i = 0; i < req.messages.size(); ++i) {
    const auto& m = req.messages[i];
    if (m.role != "system" && m.role != "user" && m.role != "assistant"
        && m.role != "tool")
      return bad(i, "role",
                 "unknown role '" + m.role
                   + "' (expected system, user, assistant or tool)");
    if (m.role == "tool" && m.tool_call_id.empty())
      return bad(i, "tool_call_id",
                 "a tool message must name the call it answers");
    for (size_t k = 0; k < m.tool_calls.size(); ++k) {
      const auto& call = m.tool_calls[k];
      auto where = "tool_calls/" + std::to_string(k);
      if (m.role != "assistant")
        return bad(i, "tool_calls", "only assistant messages carry calls");
      if (call.name.empty())
        return bad(i, where + "/name", "must not be empty");
      if (!call.arguments.is_null() && !call.arguments->is_object())
        return bad(i, where + "/arguments", "must be an object");
    }
  }
  for (size_t i = 0; i < req.tools.size(); ++i) {
    const auto& t = req.tools[i];
    auto at = "request /tools/" + std::to_string(i);
    if (t.name.empty())
      return profile_error(p, errc::invalid_input,
                           at + "/name: must not be empty");
    if (!t.parameters.is_null() && !t.parameters->is_object())
      return profile_error(p, errc::invalid_input,
                           at + "/parameters: must be a JSON Schema object");
  }
  return {};
}

net::http_request make_post(const profile& p, const call_context& ctx,
                            std::string url, const json& body) {
  net::http_request req;
  req.method = "POST";
  req.url = std::move(url);
  req.headers.add("Content-Type", "application/json");
  req.body = dump_json(body);
  req.connect_timeout = p.connect_timeout;
  req.timeout = p.timeout;
  // An LLM endpoint is chosen by the operator, not by a model or a user:
  // local servers (Ollama, vLLM, llama.cpp) live on loopback or the LAN.
  // Link-local (cloud metadata) stays refused.
  req.policy.allow_loopback = true;
  req.policy.allow_private = true;
  req.max_redirects = 0;
  req.max_response_bytes = 32u << 20;
  req.cancel_flag = ctx.cancel_flag;
  req.deadline_us = ctx.deadline_us;
  req.on_retry = ctx.on_retry;
  return req;
}

net::retry_policy retry_of(const profile& p) {
  net::retry_policy r;
  r.max_attempts = std::max<uint32_t>(p.max_attempts, 1);
  r.base_delay = std::chrono::milliseconds{500};
  r.max_delay = std::chrono::milliseconds{30'000};
  return r;
}

std::string quote(std::string_view text, std::string_view secret,
                  size_t max) {
  return "'" + net::body_excerpt(scrub(std::string{text}, secret), max)
         + "'";
}

std::optional<json> parse_json(std::string_view text) {
  auto doc = cadre::parse_json(text);
  if (!doc)
    return std::nullopt;
  return std::move(*doc);
}

std::string provider_message(std::string_view body, std::string_view secret) {
  if (auto doc = parse_json(body); doc && doc->is_object()) {
    auto e = doc->find("error");
    if (e != doc->end()) {
      if (e->is_string())
        return scrub(e->get<std::string>(), secret);
      if (e->is_object()) {
        auto m = e->find("message");
        if (m != e->end() && m->is_string())
          return scrub(m->get<std::string>(), secret);
      }
    }
    // llama.cpp and some proxies: {"message": ...} or {"detail": ...}.
    for (const char* key : {"message", "detail"}) {
      auto m = doc->find(key);
      if (m != doc->end() && m->is_string())
        return scrub(m->get<std::string>(), secret);
    }
  }
  return net::body_excerpt(scrub(std::string{body}, secret), 200);
}

std::string provider_code(std::string_view body) {
  auto doc = parse_json(body);
  if (!doc || !doc->is_object())
    return {};
  auto e = doc->find("error");
  if (e == doc->end() || !e->is_object())
    return {};
  for (const char* key : {"code", "type"}) {
    auto c = e->find(key);
    if (c != e->end() && c->is_string() && !c->get<std::string>().empty())
      return c->get<std::string>();
  }
  return {};
}

caf::error status_error(const profile& p, const std::string& model,
                        const net::http_response& resp,
                        std::string_view secret) {
  auto status = resp.status;
  auto http = "(HTTP " + std::to_string(status) + ")";
  auto msg = provider_message(resp.body, secret);
  auto code = provider_code(resp.body);
  auto said = msg.empty() ? std::string{} : ": " + msg;
  if (status == 401 || status == 403) {
    // The provider's text is left out: OpenAI's echoes part of the key.
    std::string what = "the provider refused the credentials " + http;
    if (!code.empty())
      what += " [" + code + "]";
    if (p.api_key_env.empty())
      what += "; no API key is configured (set llm.profiles." + p.name
              + ".api_key_env to the name of an environment variable that "
                "holds it)";
    else
      what += "; check the API key in the environment variable "
              + p.api_key_env + " (llm.profiles." + p.name + ".api_key_env)";
    return profile_error(p, errc::invalid_config, std::move(what));
  }
  if (status == 404 || model_missing(code, msg))
    return profile_error(p, errc::invalid_config,
                         "model '" + model + "' or the endpoint "
                           + net::redact_url(resp.url) + " not found " + http
                           + said + " (check llm.profiles." + p.name
                           + ".model and .base_url)");
  if (status >= 400 && status < 500 && status != 429) {
    if (context_overflow(code, msg))
      return profile_error(p, errc::invalid_input,
                           "the conversation does not fit the context "
                           "window of model '"
                             + model + "' " + http + said);
    return profile_error(p, errc::invalid_input,
                         "the provider rejected the request " + http + said);
  }
  if (status == 429)
    return profile_error(p, errc::unavailable,
                         "rate limited " + http
                           + suffix_attempts(resp.attempts) + said);
  if (status >= 500)
    return profile_error(p, errc::unavailable,
                         "the provider failed " + http
                           + suffix_attempts(resp.attempts) + said);
  return profile_error(p, errc::tool_failed,
                       "unexpected response " + http + said);
}

caf::error stream_error(const profile& p, const std::string& model,
                        std::string_view type, std::string_view message,
                        std::string_view secret) {
  auto msg = scrub(std::string{message}, secret);
  std::string t{type};
  auto what = "error inside the reply stream"
              + (t.empty() ? std::string{} : " [" + t + "]") + ": " + msg;
  if (t == "authentication_error" || t == "permission_error"
      || t == "billing_error")
    return profile_error(p, errc::invalid_config, std::move(what));
  if (t == "not_found_error" || model_missing(t, msg))
    return profile_error(p, errc::invalid_config,
                         what + " (model '" + model + "')");
  if (context_overflow(t, msg))
    return profile_error(p, errc::invalid_input, std::move(what));
  if (t == "invalid_request_error")
    return profile_error(p, errc::invalid_input, std::move(what));
  if (t == "timeout_error")
    return profile_error(p, errc::timeout, std::move(what));
  // overloaded_error, api_error, rate_limit_error, Ollama's runner errors:
  // the provider failed mid-reply.
  return profile_error(p, errc::unavailable, std::move(what));
}

caf::error transport_error(const profile& p, const caf::error& err,
                           std::string_view secret) {
  auto msg = scrub(message_of(err), secret);
  // Point at the setting that bounded the wait.
  if (code_of(err) == errc::timeout) {
    if (has(msg, "(connect timeout)"))
      msg += " (llm.profiles." + p.name + ".connect_timeout)";
    else if (has(msg, "(timeout)"))
      msg += " (llm.profiles." + p.name + ".timeout)";
  }
  return profile_error(p, code_of(err), std::move(msg));
}

expected<net::http_response>
send(net::http_client& client, const profile& p, const net::http_request& req,
     const std::string& model, std::string_view secret,
     const std::optional<caf::error>& stream_failure) {
  auto resp = net::perform_with_retry(client, req, retry_of(p));
  if (stream_failure)
    return *stream_failure;
  if (!resp)
    return transport_error(p, resp.error(), secret);
  if (resp->status < 200 || resp->status > 299)
    return status_error(p, model, *resp, secret);
  return resp;
}

void set_arguments(llm_tool_call& call, const json& args) {
  if (args.is_object()) {
    call.arguments = json_value{args};
    return;
  }
  call.arguments = json_value{json::object()};
  if (!args.is_null())
    call.arguments_error = "the arguments of tool call '" + call.name
                           + "' are not a JSON object: "
                           + quote(dump_json(args));
}

void set_arguments(llm_tool_call& call, std::string_view text) {
  auto trimmed = text;
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(
           trimmed.front())))
    trimmed.remove_prefix(1);
  if (trimmed.empty()) {
    call.arguments = json_value{json::object()};
    return;
  }
  auto doc = parse_json(text);
  if (!doc) {
    call.arguments = json_value{json::object()};
    call.arguments_error = "the arguments of tool call '" + call.name
                           + "' are not valid JSON: " + quote(text);
    return;
  }
  set_arguments(call, *doc);
}

caf::error malformed(const profile& p, std::string_view what,
                     std::string_view text, std::string_view secret) {
  return profile_error(p, errc::tool_failed,
                       "malformed reply: " + std::string{what} + ": "
                         + quote(text, secret));
}

llm_usage usage_of(const profile& p, uint64_t input, uint64_t output) {
  llm_usage u;
  u.input_tokens = input;
  u.output_tokens = output;
  u.cost_usd = cost_of(p, input, output);
  return u;
}

// -- line_splitter ------------------------------------------------------------

bool line_splitter::feed(std::string_view piece) {
  if (stopped_)
    return false;
  buf_.append(piece.data(), piece.size());
  size_t start = 0;
  for (;;) {
    auto end = buf_.find('\n', start);
    if (end == std::string::npos)
      break;
    std::string_view text{buf_.data() + start, end - start};
    if (!text.empty() && text.back() == '\r')
      text.remove_suffix(1);
    start = end + 1;
    if (text.find_first_not_of(" \t") == std::string_view::npos)
      continue;
    if (!on_line_(text)) {
      stopped_ = true;
      buf_.clear();
      return false;
    }
  }
  buf_.erase(0, start);
  return true;
}

bool line_splitter::finish() {
  if (stopped_)
    return false;
  auto rest = std::move(buf_);
  buf_.clear();
  while (!rest.empty() && (rest.back() == '\r' || rest.back() == '\n'))
    rest.pop_back();
  if (rest.find_first_not_of(" \t") == std::string::npos)
    return true;
  return on_line_(rest);
}

offered_tool offer(const llm_tool_spec& t) {
  offered_tool out;
  out.name = t.name;
  out.description = t.description;
  json schema = t.parameters.get().is_object() ? t.parameters.get()
                                               : json::object();
  std::string forms;
  for (const char* comb : {"oneOf", "anyOf", "allOf"}) {
    auto it = schema.find(comb);
    if (it == schema.end())
      continue;
    json branches = *it;
    schema.erase(comb);
    if (!branches.is_array())
      continue;
    bool all = std::string{comb} == "allOf";
    std::optional<std::set<std::string>> required_everywhere;
    std::set<std::string> required_any;
    for (const auto& b : branches) {
      if (!b.is_object())
        continue;
      if (auto p = b.find("properties"); p != b.end() && p->is_object())
        for (auto& [k, v] : p->items())
          if (!schema["properties"].contains(k))
            schema["properties"][k] = v;
      std::set<std::string> req;
      if (auto r = b.find("required"); r != b.end() && r->is_array())
        for (const auto& x : *r)
          if (x.is_string())
            req.insert(x.get<std::string>());
      required_any.insert(req.begin(), req.end());
      if (!required_everywhere)
        required_everywhere = req;
      else
        for (auto i = required_everywhere->begin();
             i != required_everywhere->end();)
          i = req.count(*i) ? std::next(i) : required_everywhere->erase(i);
    }
    std::set<std::string> required;
    if (auto r = schema.find("required"); r != schema.end() && r->is_array())
      for (const auto& x : *r)
        if (x.is_string())
          required.insert(x.get<std::string>());
    const auto& add = all ? required_any
                          : required_everywhere.value_or(std::set<std::string>{});
    required.insert(add.begin(), add.end());
    if (!required.empty())
      schema["required"] = required;
    if (!all)
      forms += std::string{forms.empty() ? "" : " "}
               + "The arguments take one of these forms (JSON Schema " + comb
               + "): " + dump_json(branches);
  }
  for (const char* k : {"enum", "const", "not", "if", "then", "else"})
    schema.erase(k);
  schema["type"] = "object";
  if (!schema.contains("properties") || !schema["properties"].is_object())
    schema["properties"] = json::object();
  out.parameters = std::move(schema);
  if (!forms.empty())
    out.description += (out.description.empty() ? "" : "\n\n") + forms;
  return out;
}

} // namespace cadre::tools::llm::detail
