// http: one HTTP request with timeouts, retries (connection errors, 429,
// 5xx, honouring Retry-After), a redirect limit, a response size cap and an
// SSRF policy; returns status, headers and the body (parsed when JSON).

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/tools/net/http_client.hpp"
#include "codec/base64.hpp"
#include "cadre/tools/tool.hpp"
#include "net/net_support.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools {

namespace {

constexpr std::string_view tool_name = "http";

/// Which final statuses are errors rather than output.
enum class status_failure { never, server_errors, all_errors };

constexpr std::string_view failure_names[] = {"never", "server_errors",
                                              "all_errors"};

std::optional<status_failure> parse_failure(const json& x) {
  if (!x.is_string())
    return std::nullopt;
  for (size_t i = 0; i < std::size(failure_names); ++i)
    if (x.get<std::string>() == failure_names[i])
      return static_cast<status_failure>(i);
  return std::nullopt;
}

constexpr std::string_view methods[] = {"GET", "HEAD",   "POST",   "PUT",
                                        "PATCH", "DELETE", "OPTIONS"};

/// A header name (an RFC 9110 token) and a value that cannot end the
/// header early, as schema patterns.
constexpr const char* header_name_pattern
  = "^[^ \\t\\r\\n:()<>@,;\\\\\"/\\[\\]?={}]+$";
constexpr const char* header_value_pattern = "^[^\\r\\n\\x00]*$";

/// Settings of the http tool (`tools.http`). The limits are also ceilings:
/// an input may ask for less, never for more.
struct http_options {
  /// Common network settings (net_support.hpp): SSRF policy, timeouts,
  /// redirects, size cap, retries. Default: see net_options
  net::net_options net;
  /// Default of the input's fail_on_status. Default: server_errors
  status_failure fail_on_status = status_failure::server_errors;
};

class http_tool final : public tool {
public:
  explicit http_tool(http_options opts) : opts_(std::move(opts)) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return std::string{tool_name};
  }

  tool_description describe() const override {
    auto limit = [](const char* what, uint64_t max) {
      return json{{"type", "integer"},
                  {"minimum", 1},
                  {"maximum", max},
                  {"description", what}};
    };
    // Methods in either case (the tool sends them upper-case).
    json method_enum = json::array();
    for (auto m : methods)
      method_enum.push_back(m);
    for (auto m : methods) {
      std::string lower{m};
      for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      method_enum.push_back(lower);
    }
    json no_body_methods = json::array({"GET", "HEAD", "get", "head"});
    json text{{"type", "string"}};
    auto auth_kind = [&](const char* type, const char* a, json a_schema,
                         const char* b) {
      return json{{"if", {{"properties", {{"type", {{"const", type}}}}}}},
                  {"then",
                   {{"properties",
                     {{"type", json::object()}, {a, std::move(a_schema)},
                      {b, text}}},
                    {"required", {a, b}},
                    {"additionalProperties", false}}}};
    };
    json failure_enum = json::array();
    for (auto f : failure_names)
      failure_enum.push_back(f);
    const auto& n = opts_.net;
    return {
      std::string{tool_name},
      "Makes one HTTP request and returns the status, the response headers "
      "and the body (parsed when the response is JSON, else text). Send a "
      "JSON body with `json` or a text body with `body`; `query` adds URL "
      "parameters. Connection errors, 429 and 5xx are retried with backoff "
      "(honouring Retry-After). By default a 4xx is returned as output (check "
      "`status`) and a 5xx that persists is an error. Private and loopback "
      "addresses are refused unless the node allows them.",
      json{
        {"type", "object"},
        {"properties",
         {
           {"url",
            {{"type", "string"},
             {"minLength", 1},
             {"description", "Absolute http:// or https:// URL."}}},
           {"method",
            {{"type", "string"},
             {"enum", method_enum},
             {"description", "HTTP method; default GET."}}},
           {"headers",
            {{"type", "object"},
             // A name that is not a token is an unknown property.
             {"patternProperties",
              {{header_name_pattern,
                {{"type", "string"}, {"pattern", header_value_pattern}}}}},
             {"additionalProperties", false},
             {"description", "Request headers, name to value (no line "
                             "breaks)."}}},
           {"query",
            {{"type", "object"},
             {"additionalProperties",
              {{"type", {"string", "number", "boolean", "array", "null"}},
               {"items", {{"type", {"string", "number", "boolean"}}}}}},
             {"description", "URL query parameters, URL-encoded and appended "
                             "to the URL; an array repeats the key, null "
                             "leaves it out."}}},
           {"json",
            {{"description", "A JSON request body; sets Content-Type: "
                             "application/json unless a header gives one."}}},
           {"body",
            {{"type", "string"},
             {"description", "A text request body; sets Content-Type: "
                             "text/plain; charset=utf-8 unless a header "
                             "gives one. Exclusive with json."}}},
           {"timeout_ms",
            limit("Time limit per attempt, in milliseconds.",
                  static_cast<uint64_t>(n.timeout.count()))},
           {"connect_timeout_ms",
            limit("Time limit to connect, in milliseconds.",
                  static_cast<uint64_t>(n.connect_timeout.count()))},
           {"max_redirects",
            {{"type", "integer"},
             {"minimum", 0},
             {"maximum", n.max_redirects},
             {"description", "Redirects to follow; 0 returns the redirect "
                             "itself."}}},
           {"max_response_bytes",
            limit("Largest response body accepted.", n.max_response_bytes)},
           {"max_attempts",
            limit("Attempts in all, retries included; 1: no retry.",
                  n.retry.max_attempts)},
           {"auth",
            {{"type", "object"},
             {"properties",
              {{"type", {{"type", "string"},
                         {"enum", {"bearer", "basic", "header"}}}},
               {"token", {{"type", "string"}}},
               {"username", {{"type", "string"}}},
               {"password", {{"type", "string"}}},
               {"name", {{"type", "string"}}},
               {"value", {{"type", "string"}}}}},
             {"required", {"type"}},
             {"allOf",
              json::array({auth_kind("bearer", "token", text, "type"),
                           auth_kind("basic", "username", text, "password"),
                           auth_kind("header", "name",
                                     {{"type", "string"},
                                      {"pattern", header_name_pattern}},
                                     "value")})},
             {"description",
              "Credentials from a named secret, written in the workflow "
              "as \"{{ secrets.NAME }}\": bearer (token), basic "
              "(username, password) or header (name, value)."}}},
           {"fail_on_status",
            {{"type", "string"},
             {"enum", failure_enum},
             {"description",
              "Which final statuses are errors: never (every status is "
              "output), server_errors (5xx; the default) or all_errors "
              "(4xx and 5xx)."}}},
         }},
        {"required", {"url"}},
        {"additionalProperties", false},
        {"allOf",
         json::array(
           {// One body at most, and none for GET (the default) and HEAD.
            {{"not", {{"required", {"json", "body"}}}}},
            {{"if", {{"anyOf", json::array({{{"not", {{"required",
                                                       {"method"}}}}},
                                            {{"properties",
                                              {{"method",
                                                {{"enum",
                                                  no_body_methods}}}}}}})}}},
             {"then", {{"not", {{"anyOf",
                                 json::array({{{"required", {"json"}}},
                                              {{"required",
                                                {"body"}}}})}}}}}}})},
      },
      json{
        {"type", "object"},
        {"properties",
         {
           {"status", {{"type", "integer"}}},
           {"headers",
            {{"type", "object"},
             {"additionalProperties", {{"type", "string"}}},
             {"description", "Response headers, lower-case names; repeated "
                             "fields joined with \", \"."}}},
           {"body",
            {{"description", "Parsed JSON when the response is JSON, else "
                             "text; null when the body is not UTF-8 (see "
                             "body_base64)."}}},
           {"body_base64", {{"type", "string"}}},
           {"url",
            {{"type", "string"},
             {"description", "The URL that answered, after redirects."}}},
           {"attempts", {{"type", "integer"}, {"minimum", 1}}},
           {"redirects", {{"type", "integer"}, {"minimum", 0}}},
         }},
        {"required", {"status", "headers", "body", "url", "attempts"}},
      },
    };
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    const json& in = *input;
    // The input schema says the shape, the limits (the settings are their
    // ceilings) and which keys go together; what is left here is where a
    // credential came from.
    if (auto ok = detail::check_input(tool_name, input_schema_, in); !ok)
      return std::move(ok.error());
    auto req = net::make_request(opts_.net, ctx);
    auto retry = opts_.net.retry;
    auto failure = opts_.fail_on_status;
    parse(in, req, retry, failure);
    if (auto err = authorize(in, ctx, req))
      return err;
    if (!ctx.idempotency_key.empty()
        && !req.headers.contains("idempotency-key"))
      req.headers.add("Idempotency-Key", ctx.idempotency_key);
    auto resp = net::perform_with_retry(client_, req, retry);
    if (!resp)
      return net::tool_error(tool_name, resp.error());
    auto status = resp->status;
    bool server = status >= 500;
    bool client = status >= 400 && status < 500;
    if ((server && failure != status_failure::never)
        || (client && failure == status_failure::all_errors)) {
      std::string msg = "tool http: " + req.method + " "
                        + net::redact_url(resp->url) + ": status "
                        + std::to_string(status);
      if (resp->attempts > 1)
        msg += " after " + std::to_string(resp->attempts) + " attempts";
      // Redacted before the cut: a value across it would leave its start.
      if (!resp->body.empty())
        msg += ": " + net::body_excerpt(ctx.redact(resp->body));
      return make_error(server ? errc::unavailable : errc::tool_failed,
                        std::move(msg));
    }
    json out{{"status", status},
             {"headers", json::object()},
             {"url", resp->url},
             {"attempts", resp->attempts},
             {"redirects", resp->redirects}};
    auto& headers = out["headers"];
    for (const auto& [name, value] : resp->headers.entries()) {
      auto key = name;
      for (auto& c : key)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!net::valid_utf8(value))
        continue;
      if (headers.contains(key))
        headers[key] = headers[key].get<std::string>() + ", " + value;
      else
        headers[key] = value;
    }
    net::put_body(out, *resp);
    return json_value{std::move(out)};
  }

private:
  /// Sets the header of `auth`. Its credential must come from a secret
  /// (a pointer the worker filled in), or it would sit in the event log.
  static caf::error authorize(const json& in, const tool_context& ctx,
                              net::http_request& req) {
    auto a = in.find("auth");
    if (a == in.end())
      return {};
    auto bad = [](std::string_view pointer, std::string_view what) {
      return detail::input_error(tool_name, pointer, what);
    };
    auto type = a->at("type").get<std::string>();
    const char* credential = type == "bearer"  ? "token"
                             : type == "basic" ? "password"
                                               : "value";
    auto text = [&](const char* key) -> const std::string& {
      return a->at(key).get_ref<const std::string&>();
    };
    auto cred_pointer = std::string{"/auth/"} + credential;
    if (std::find(ctx.secret_pointers.begin(), ctx.secret_pointers.end(),
                  cred_pointer)
        == ctx.secret_pointers.end())
      return bad(cred_pointer, "must be a secret reference written in the "
                               "workflow, \"{{ secrets.NAME }}\" (a literal "
                               "credential would be recorded in the event "
                               "log)");
    const auto& secret = text(credential);
    if (secret.find_first_of("\r\n") != std::string::npos
        || secret.find('\0') != std::string::npos)
      return bad(cred_pointer, "the secret must not contain line breaks");
    if (type == "bearer") {
      req.headers.set("Authorization", "Bearer " + secret);
    } else if (type == "basic") {
      req.headers.set("Authorization",
                      "Basic "
                        + detail::base64_encode(text("username") + ":"
                                                + secret));
    } else {
      req.headers.set(text("name"), secret);
    }
    return {};
  }

  /// Fills `req` from an input the schema accepted.
  void parse(const json& in, net::http_request& req, net::retry_policy& retry,
             status_failure& failure) const {
    req.url = in.at("url").get<std::string>();
    if (auto m = in.find("method"); m != in.end()) {
      auto name = m->get<std::string>();
      for (auto& c : name)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      req.method = std::move(name);
    }
    if (auto h = in.find("headers"); h != in.end())
      for (const auto& [name, value] : h->items())
        req.headers.add(name, value.get<std::string>());
    if (auto q = in.find("query"); q != in.end()) {
      std::string pairs;
      auto add = [&](const std::string& key, const json& v) {
        auto text = v.is_string() ? v.get<std::string>() : dump_json(v);
        if (!pairs.empty())
          pairs += '&';
        pairs += net::url_encode(key) + "=" + net::url_encode(text);
      };
      for (const auto& [key, value] : q->items()) {
        if (value.is_array())
          for (const auto& v : value)
            add(key, v);
        else if (!value.is_null())
          add(key, value);
      }
      req.url = net::append_query(req.url, pairs);
    }
    if (auto j = in.find("json"); j != in.end()) {
      req.body = dump_json(*j);
      if (!req.headers.contains("content-type"))
        req.headers.add("Content-Type", "application/json");
    } else if (auto b = in.find("body"); b != in.end()) {
      req.body = b->get<std::string>();
      if (!req.headers.contains("content-type"))
        req.headers.add("Content-Type", "text/plain; charset=utf-8");
    }
    auto number = [&](const char* key, auto fallback) {
      auto i = in.find(key);
      return i == in.end() ? static_cast<uint64_t>(fallback)
                           : *detail::as_uint(*i);
    };
    req.timeout = std::chrono::milliseconds{
      static_cast<int64_t>(number("timeout_ms", req.timeout.count()))};
    req.connect_timeout = std::chrono::milliseconds{static_cast<int64_t>(
      number("connect_timeout_ms", req.connect_timeout.count()))};
    req.max_redirects
      = static_cast<uint32_t>(number("max_redirects", req.max_redirects));
    req.max_response_bytes
      = number("max_response_bytes", req.max_response_bytes);
    retry.max_attempts
      = static_cast<uint32_t>(number("max_attempts", retry.max_attempts));
    if (auto f = in.find("fail_on_status"); f != in.end())
      failure = *parse_failure(*f);
  }

  http_options opts_;
  net::http_client client_;
  json_schema input_schema_;
};

} // namespace

json http_settings_schema() {
  auto props = net::net_settings_properties();
  props["fail_on_status"]
    = {{"enum", {"never", "server_errors", "all_errors"}},
       {"default", "server_errors"},
       {"description", "Default of the input's fail_on_status."}};
  return detail::settings_schema(std::move(props));
}

expected<std::unique_ptr<tool>> make_http_tool(const json_value& settings) {
  const json& obj = *settings;
  http_options opts;
  opts.net = net::parse_net_options(tool_name, obj);
  if (auto f = obj.find("fail_on_status"); f != obj.end() && !f->is_null())
    if (auto x = parse_failure(*f))
      opts.fail_on_status = *x;
  return detail::with_input_schema(std::make_unique<http_tool>(std::move(opts)));
}

} // namespace cadre::tools
