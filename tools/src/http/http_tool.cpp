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
    json method_enum = json::array();
    for (auto m : methods)
      method_enum.push_back(m);
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
             {"description", "Absolute http:// or https:// URL."}}},
           {"method",
            {{"type", "string"},
             {"enum", method_enum},
             {"description", "HTTP method; default GET."}}},
           {"headers",
            {{"type", "object"},
             {"additionalProperties", {{"type", "string"}}},
             {"description", "Request headers, name to value."}}},
           {"query",
            {{"type", "object"},
             {"additionalProperties",
              {{"type", {"string", "number", "boolean", "array", "null"}}}},
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
    if (auto ok = detail::check_object(tool_name, in,
                                       {"url", "method", "headers", "query",
                                        "json", "body", "timeout_ms",
                                        "connect_timeout_ms", "max_redirects",
                                        "max_response_bytes", "max_attempts",
                                        "fail_on_status", "auth"});
        !ok)
      return std::move(ok.error());
    auto req = net::make_request(opts_.net, ctx);
    auto retry = opts_.net.retry;
    auto failure = opts_.fail_on_status;
    if (auto err = parse(in, req, retry, failure))
      return err;
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
    if (!a->is_object())
      return bad("/auth", "must be an object with 'type'");
    auto t = a->find("type");
    auto type = t != a->end() && t->is_string() ? t->get<std::string>()
                                                : std::string{};
    std::vector<const char*> keys;
    const char* credential = nullptr;
    if (type == "bearer") {
      keys = {"type", "token"};
      credential = "token";
    } else if (type == "basic") {
      keys = {"type", "username", "password"};
      credential = "password";
    } else if (type == "header") {
      keys = {"type", "name", "value"};
      credential = "value";
    } else {
      return bad("/auth/type", "must be one of bearer, basic, header");
    }
    for (const auto& item : a->items()) {
      // Not a structured binding: clang before 16 cannot capture one.
      const auto& key = item.key();
      if (std::find_if(keys.begin(), keys.end(),
                       [&](const char* k) { return key == k; })
          == keys.end())
        return bad("/auth" + detail::pointer_to(key),
                   "is not a key of auth type " + type);
    }
    auto text = [&](const char* key) -> const std::string* {
      auto i = a->find(key);
      return i != a->end() && i->is_string() ? &i->get_ref<const std::string&>()
                                             : nullptr;
    };
    for (auto key : keys)
      if (!text(key))
        return bad(std::string{"/auth/"} + key,
                   "is required (a string) for auth type " + type);
    auto cred_pointer = std::string{"/auth/"} + credential;
    if (std::find(ctx.secret_pointers.begin(), ctx.secret_pointers.end(),
                  cred_pointer)
        == ctx.secret_pointers.end())
      return bad(cred_pointer, "must be a secret reference written in the "
                               "workflow, \"{{ secrets.NAME }}\" (a literal "
                               "credential would be recorded in the event "
                               "log)");
    const auto& secret = *text(credential);
    if (secret.find_first_of("\r\n") != std::string::npos
        || secret.find('\0') != std::string::npos)
      return bad(cred_pointer, "the secret must not contain line breaks");
    if (type == "bearer") {
      req.headers.set("Authorization", "Bearer " + secret);
    } else if (type == "basic") {
      req.headers.set("Authorization",
                      "Basic "
                        + detail::base64_encode(*text("username") + ":"
                                                + secret));
    } else {
      const auto& name = *text("name");
      if (name.empty()
          || name.find_first_of(" \t\r\n:()<>@,;\\\"/[]?={}")
               != std::string::npos)
        return bad("/auth/name", "is not a valid header name");
      req.headers.set(name, secret);
    }
    return {};
  }

  /// Fills `req` from the input; returns an error naming the JSON pointer.
  caf::error parse(const json& in, net::http_request& req,
                   net::retry_policy& retry, status_failure& failure) const {
    auto bad = [](std::string_view pointer, std::string_view what) {
      return detail::input_error(tool_name, pointer, what);
    };
    auto url = in.find("url");
    if (url == in.end())
      return bad("/url", "is required");
    if (!url->is_string() || url->get<std::string>().empty())
      return bad("/url", "must be a non-empty string");
    req.url = url->get<std::string>();
    if (auto m = in.find("method"); m != in.end()) {
      if (!m->is_string())
        return bad("/method", "must be a string");
      auto name = m->get<std::string>();
      for (auto& c : name)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (std::find(std::begin(methods), std::end(methods), name)
          == std::end(methods))
        return bad("/method", "must be one of GET, HEAD, POST, PUT, PATCH, "
                              "DELETE, OPTIONS");
      req.method = std::move(name);
    }
    if (auto h = in.find("headers"); h != in.end()) {
      if (!h->is_object())
        return bad("/headers", "must be an object of strings");
      for (const auto& [name, value] : h->items()) {
        auto pointer = "/headers" + detail::pointer_to(name);
        if (!value.is_string())
          return bad(pointer, "must be a string");
        auto text = value.get<std::string>();
        if (name.empty()
            || name.find_first_of(" \t\r\n:()<>@,;\\\"/[]?={}")
                 != std::string::npos)
          return bad(pointer, "is not a valid header name");
        if (text.find_first_of("\r\n") != std::string::npos
            || text.find('\0') != std::string::npos)
          return bad(pointer, "must not contain line breaks");
        req.headers.add(name, std::move(text));
      }
    }
    if (auto q = in.find("query"); q != in.end()) {
      if (!q->is_object())
        return bad("/query", "must be an object");
      std::string pairs;
      auto add = [&](const std::string& key, const json& v) {
        std::string text;
        if (v.is_string())
          text = v.get<std::string>();
        else if (v.is_boolean() || v.is_number())
          text = dump_json(v);
        else
          return false;
        if (!pairs.empty())
          pairs += '&';
        pairs += net::url_encode(key) + "=" + net::url_encode(text);
        return true;
      };
      for (const auto& [key, value] : q->items()) {
        auto pointer = "/query" + detail::pointer_to(key);
        if (value.is_null())
          continue;
        if (value.is_array()) {
          for (size_t i = 0; i < value.size(); ++i)
            if (!add(key, value[i]))
              return bad(pointer + "/" + std::to_string(i),
                         "must be a string, number or boolean");
        } else if (!add(key, value)) {
          return bad(pointer, "must be a string, number, boolean, array or "
                              "null");
        }
      }
      req.url = net::append_query(req.url, pairs);
    }
    auto j = in.find("json");
    auto b = in.find("body");
    if (j != in.end() && b != in.end())
      return bad("/body", "give either json or body, not both");
    if (j != in.end()) {
      req.body = dump_json(*j);
      if (!req.headers.contains("content-type"))
        req.headers.add("Content-Type", "application/json");
    } else if (b != in.end()) {
      if (!b->is_string())
        return bad("/body", "must be a string (use json for a JSON body)");
      req.body = b->get<std::string>();
      if (!req.headers.contains("content-type"))
        req.headers.add("Content-Type", "text/plain; charset=utf-8");
    }
    if (!req.body.empty() && (req.method == "GET" || req.method == "HEAD"))
      return bad(j != in.end() ? "/json" : "/body",
                 "a " + req.method + " request cannot have a body");
    const auto& n = opts_.net;
    auto limited = [&](const char* key, uint64_t min, uint64_t max,
                       uint64_t& dst) -> caf::error {
      auto i = in.find(key);
      if (i == in.end())
        return {};
      auto x = detail::as_uint(*i);
      if (!x || *x < min || *x > max)
        return bad(std::string{"/"} + key,
                   "must be an integer in [" + std::to_string(min) + ", "
                     + std::to_string(max) + "] (tools.http." + key
                     + " is the ceiling)");
      dst = *x;
      return {};
    };
    uint64_t timeout = static_cast<uint64_t>(req.timeout.count());
    uint64_t connect = static_cast<uint64_t>(req.connect_timeout.count());
    uint64_t redirects = req.max_redirects;
    uint64_t bytes = req.max_response_bytes;
    uint64_t attempts = retry.max_attempts;
    if (auto err = limited("timeout_ms", 1,
                           static_cast<uint64_t>(n.timeout.count()), timeout))
      return err;
    if (auto err = limited("connect_timeout_ms", 1,
                           static_cast<uint64_t>(n.connect_timeout.count()),
                           connect))
      return err;
    if (auto err = limited("max_redirects", 0, n.max_redirects, redirects))
      return err;
    if (auto err = limited("max_response_bytes", 1, n.max_response_bytes,
                           bytes))
      return err;
    if (auto err = limited("max_attempts", 1, n.retry.max_attempts, attempts))
      return err;
    req.timeout = std::chrono::milliseconds{static_cast<int64_t>(timeout)};
    req.connect_timeout
      = std::chrono::milliseconds{static_cast<int64_t>(connect)};
    req.max_redirects = static_cast<uint32_t>(redirects);
    req.max_response_bytes = bytes;
    retry.max_attempts = static_cast<uint32_t>(attempts);
    if (auto f = in.find("fail_on_status"); f != in.end()) {
      auto x = parse_failure(*f);
      if (!x)
        return bad("/fail_on_status",
                   "must be one of never, server_errors, all_errors");
      failure = *x;
    }
    return {};
  }

  http_options opts_;
  net::http_client client_;
};

} // namespace

expected<std::unique_ptr<tool>> make_http_tool(const json_value& settings) {
  auto obj = detail::settings_object(tool_name, settings);
  if (!obj)
    return std::move(obj.error());
  if (auto ok = net::check_setting_keys(tool_name, *obj, {"fail_on_status"});
      !ok)
    return std::move(ok.error());
  http_options opts;
  auto net_opts = net::parse_net_options(tool_name, *obj);
  if (!net_opts)
    return std::move(net_opts.error());
  opts.net = std::move(*net_opts);
  if (auto f = obj->find("fail_on_status"); f != obj->end() && !f->is_null()) {
    auto x = parse_failure(*f);
    if (!x)
      return detail::settings_error(tool_name, "fail_on_status",
                                    "must be one of never, server_errors, "
                                    "all_errors");
    opts.fail_on_status = *x;
  }
  return std::unique_ptr<tool>{std::make_unique<http_tool>(std::move(opts))};
}

} // namespace cadre::tools
