#include "airflow/airflow_client.hpp"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <utility>

#include "net/net_support.hpp"
#include "tool_support.hpp"

namespace cadre::tools::airflow {

namespace {

constexpr std::string_view tool_name = "airflow";

/// Reads one `connections.<name>` section.
expected<connection_options> parse_connection(const std::string& name,
                                              const json& section) {
  auto prefix = "connections." + name;
  auto bad = [&](std::string_view key, std::string_view what) {
    return detail::settings_error(tool_name,
                                  key.empty() ? prefix
                                              : prefix + "." + std::string{key},
                                  what);
  };
  connection_options c;
  c.name = name;
  auto str = [&](const char* key, std::string& out) {
    return detail::read_string(section, key, out, bad);
  };
  auto dur = [&](const char* key, std::chrono::milliseconds& out) {
    return detail::read_duration(section, key, out, bad);
  };
  std::string version;
  std::string auth;
  for (auto r :
       {str("base_url", c.base_url), str("api_version", version),
        str("auth", auth), str("username", c.username),
        str("password_env", c.password_env), str("token_env", c.token_env),
        dur("timeout", c.timeout), dur("connect_timeout", c.connect_timeout),
        dur("retry_backoff", c.retry_backoff)})
    if (!r)
      return r.error();
  c.max_retries = detail::setting(section, "max_retries", c.max_retries);
  while (!c.base_url.empty() && c.base_url.back() == '/')
    c.base_url.pop_back();
  if (c.base_url.empty())
    return bad("base_url", "is required (e.g. http://airflow:8080)");
  if (c.base_url.rfind("http://", 0) != 0
      && c.base_url.rfind("https://", 0) != 0)
    return bad("base_url", "must start with http:// or https://");
  auto authority = c.base_url.substr(c.base_url.find("//") + 2);
  authority = authority.substr(0, authority.find('/'));
  // Never echo the URL: it would show a password written into it.
  if (authority.find('@') != std::string::npos)
    return bad("base_url", "must not hold credentials (use username and "
                           "password_env)");
  if (c.base_url.find_first_of("?#") != std::string::npos)
    return bad("base_url", "must not have a query or a fragment");
  c.api_version = version == "v1" || version == "1" ? 1 : 2;
  if (auth.empty())
    c.auth = c.api_version == 1 ? auth_mode::basic : auth_mode::jwt;
  else if (auth == "jwt")
    c.auth = auth_mode::jwt;
  else if (auth == "basic")
    c.auth = auth_mode::basic;
  else
    c.auth = auth_mode::token;
  if (c.auth == auth_mode::jwt && c.api_version == 1)
    return bad("auth", "Airflow 2 (api_version v1) has no /auth/token: use "
                       "basic or token");
  for (const auto* key : {"password_env", "token_env"}) {
    const auto& var = key[0] == 'p' ? c.password_env : c.token_env;
    // Never echo the value: a secret pasted here by mistake stays unseen.
    if (!var.empty() && !detail::env_name(var))
      return bad(key, "must be the name of an environment variable "
                      "(letters, digits and _), not the secret itself");
  }
  if (c.auth == auth_mode::token) {
    if (c.token_env.empty())
      return bad("token_env", "is required with auth token");
  } else {
    if (c.username.empty())
      return bad("username", std::string{"is required with auth "}
                               + (c.auth == auth_mode::jwt ? "jwt" : "basic"));
    if (c.password_env.empty())
      return bad("password_env",
                 std::string{"is required with auth "}
                   + (c.auth == auth_mode::jwt ? "jwt" : "basic"));
  }
  return c;
}

std::string suffix_attempts(uint32_t attempts) {
  return attempts > 1 ? " after " + std::to_string(attempts) + " attempts"
                      : std::string{};
}

} // namespace

json settings_schema() {
  airflow_options defaults;
  connection_options conn;
  auto connection = detail::settings_schema(
    {{"base_url", detail::string_setting("Where the API server answers, "
                                         "without /api/v2; no credentials "
                                         "in it. Required.",
                                         false)},
     {"api_version", {{"enum", {"v2", "v1", "2", "1"}},
                      {"default", "v2"},
                      {"description", "v2 (Airflow 3) or v1 (Airflow 2)."}}},
     {"auth", {{"enum", {"jwt", "basic", "token"}},
               {"description", "Default: jwt (basic with v1)."}}},
     {"username", detail::string_setting("For jwt and basic.", false)},
     {"password_env",
      detail::string_setting("The environment variable that holds the "
                             "password.",
                             false)},
     {"token_env", detail::string_setting("The environment variable that "
                                          "holds a token.",
                                          false)},
     {"timeout", detail::duration_setting("30s", "One attempt of one "
                                                 "request.")},
     {"connect_timeout", detail::duration_setting("10s", "Connecting.")},
     {"max_retries", detail::integer_setting(conn.max_retries, 0, 10,
                                             "Retries after the first "
                                             "attempt.")},
     {"retry_backoff",
      detail::duration_setting("500ms", "The wait before the first retry, "
                                        "doubled for each next one.")}});
  return detail::settings_schema(
    {{"connections", {{"type", "object"},
                      {"additionalProperties", std::move(connection)},
                      {"description", "Airflow deployments by name."}}},
     {"page_size", detail::integer_setting(defaults.page_size, 1, 10'000,
                                           "limit of each list request.")},
     {"max_items", detail::integer_setting(defaults.max_items, 1, 1'000'000,
                                           "The most runs or task instances "
                                           "one call collects.")},
     {"max_log_bytes", detail::integer_setting(defaults.max_log_bytes, 1,
                                               uint64_t{1} << 30,
                                               "The ceiling of a call's "
                                               "max_bytes.")},
     {"max_response_bytes",
      detail::integer_setting(defaults.max_response_bytes, 1024,
                              uint64_t{1} << 32,
                              "The largest answer accepted.")}});
}

expected<airflow_options> parse_options(const json_value& settings) {
  const json& obj = *settings;
  airflow_options opts;
  opts.page_size = detail::setting(obj, "page_size", opts.page_size);
  opts.max_items = detail::setting(obj, "max_items", opts.max_items);
  opts.max_log_bytes = detail::setting(obj, "max_log_bytes",
                                       opts.max_log_bytes);
  opts.max_response_bytes = detail::setting(obj, "max_response_bytes",
                                            opts.max_response_bytes);
  if (auto c = obj.find("connections"); c != obj.end() && !c->is_null()) {
    for (const auto& [name, section] : c->items()) {
      auto conn = parse_connection(name, section);
      if (!conn)
        return std::move(conn.error());
      opts.connections.emplace(name, std::move(*conn));
    }
  }
  return opts;
}

std::string segment(std::string_view text) {
  return net::url_encode(text);
}

std::string problem_detail(std::string_view body) {
  auto doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (!doc.is_discarded() && doc.is_object()) {
    auto d = doc.find("detail");
    if (d != doc.end()) {
      if (d->is_string())
        return d->get<std::string>();
      if (d->is_array()) {
        // FastAPI's validation errors: [{loc: [...], msg, type}].
        std::string out;
        for (const auto& e : *d) {
          if (!out.empty())
            out += "; ";
          if (!e.is_object()) {
            out += e.dump();
            continue;
          }
          std::string loc;
          if (auto l = e.find("loc"); l != e.end() && l->is_array())
            for (const auto& part : *l)
              loc += (loc.empty() ? "" : ".")
                     + (part.is_string() ? part.get<std::string>()
                                         : part.dump());
          auto msg = e.value("msg", std::string{});
          out += loc.empty() ? msg : loc + ": " + msg;
        }
        return out;
      }
      return d->dump();
    }
  }
  return net::body_excerpt(body, 300);
}

errc status_code(long status) noexcept {
  switch (status) {
    case 400:
    case 422:
      return errc::invalid_input;
    case 401:
      return errc::unauthorized;
    case 403:
      return errc::forbidden;
    case 404:
      return errc::not_found;
    case 409:
      return errc::conflict;
    case 429:
      return errc::rate_limited;
    default:
      return status >= 500 ? errc::unavailable : errc::tool_failed;
  }
}

client::client(airflow_options opts) : opts_(std::move(opts)) {
}

expected<const connection_options*>
client::connection(const std::string& name) const {
  auto i = opts_.connections.find(name);
  if (i != opts_.connections.end())
    return &i->second;
  std::string names;
  for (const auto& [n, c] : opts_.connections)
    names += (names.empty() ? "" : ", ") + n;
  return detail::input_error(tool_name, "/connection",
                             "no connection '" + name
                               + "' is configured (tools.airflow.connections"
                               + (names.empty() ? " is empty"
                                                : " has: " + names)
                               + ")");
}

void client::remember(const std::string& secret) {
  // Named by its hash: the store dedupes by name, the value is never shown.
  if (!secret.empty())
    secrets_.add("credential-"
                   + std::to_string(std::hash<std::string>{}(secret)),
                 secret);
}

std::string client::scrub(std::string text) const {
  return secrets_.redact(std::move(text));
}

void client::scrub(json& x) const {
  secrets_.redact(x);
}

expected<std::string> client::secret_env(const connection_options& conn,
                                         const std::string& var,
                                         std::string_view key) {
  const char* value = std::getenv(var.c_str());
  if (value == nullptr || *value == 0)
    return make_error(errc::invalid_config,
                      "tool airflow: connection '" + conn.name
                        + "': the environment variable " + var
                        + " (tools.airflow.connections." + conn.name + "."
                        + std::string{key} + ") is not set or empty");
  std::string out{value};
  remember(out);
  return out;
}

net::http_request client::request(const connection_options& conn,
                                  const tool_context& ctx) const {
  net::http_request req;
  req.connect_timeout = conn.connect_timeout;
  req.timeout = conn.timeout;
  // The operator names the server, not a model or a caller: Airflow lives
  // on loopback or a private network. Link-local (cloud metadata) stays
  // refused.
  req.policy.allow_loopback = true;
  req.policy.allow_private = true;
  // A redirect could carry a POST on as a GET; base_url names the server.
  req.max_redirects = 0;
  req.max_response_bytes = opts_.max_response_bytes;
  req.cancel_flag = ctx.cancel_flag;
  req.deadline_us = ctx.deadline_us;
  return req;
}

net::retry_policy client::retry(const connection_options& conn,
                                bool on) const {
  net::retry_policy p;
  p.max_attempts = on ? conn.max_retries + 1 : 1;
  p.base_delay = conn.retry_backoff;
  p.max_delay = std::chrono::milliseconds{60'000};
  return p;
}

caf::error client::status_error(const connection_options& conn,
                                const std::string& what,
                                const net::http_response& resp) const {
  auto msg = "tool airflow: " + what + " (connection '" + conn.name
             + "'): HTTP " + std::to_string(resp.status)
             + suffix_attempts(resp.attempts);
  if (!resp.body.empty())
    msg += ": " + problem_detail(scrub(resp.body));
  if (resp.status >= 300 && resp.status < 400) {
    msg += " (redirects are not followed: set tools.airflow.connections."
           + conn.name + ".base_url to the address that answers";
    if (const auto* loc = resp.headers.find("location"))
      msg += ", e.g. the origin of " + net::redact_url(*loc);
    msg += ")";
  }
  return make_error(status_code(resp.status), scrub(std::move(msg)));
}

caf::error client::transport_error(const connection_options& conn,
                                   const caf::error& err) const {
  auto msg = "tool airflow: connection '" + conn.name + "': "
             + message_of(err);
  if (code_of(err) == errc::timeout)
    msg += " (tools.airflow.connections." + conn.name + ".timeout)";
  return make_error(code_of(err), scrub(std::move(msg)));
}

expected<std::string> client::fetch_token(const connection_options& conn,
                                          const tool_context& ctx) {
  auto password = secret_env(conn, conn.password_env, "password_env");
  if (!password)
    return std::move(password.error());
  auto req = request(conn, ctx);
  req.method = "POST";
  req.url = conn.base_url + "/auth/token";
  req.headers.set("Content-Type", "application/json");
  req.headers.set("Accept", "application/json");
  req.body = json{{"username", conn.username}, {"password", *password}}.dump();
  auto resp = net::perform_with_retry(http_, req, retry(conn, true));
  if (!resp)
    return transport_error(conn, resp.error());
  if (resp->status != 200 && resp->status != 201) {
    auto err = status_error(conn, "POST /auth/token", *resp);
    if (resp->status == 404)
      return make_error(errc::invalid_config,
                        message_of(err)
                          + " (no /auth/token: is it Airflow 2? Then set "
                            "api_version: v1 and auth: basic)");
    if (resp->status == 401 || resp->status == 403)
      return make_error(errc::unauthorized,
                        message_of(err) + " (the username and the password in "
                          + conn.password_env + " were refused)");
    return err;
  }
  auto doc = json::parse(resp->body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()
      || !doc.contains("access_token") || !doc["access_token"].is_string()
      || doc["access_token"].get<std::string>().empty())
    return make_error(errc::tool_failed,
                      "tool airflow: POST /auth/token (connection '"
                        + conn.name
                        + "'): the answer has no access_token string");
  auto token = doc["access_token"].get<std::string>();
  remember(token);
  return token;
}

expected<std::string> client::authorization(const connection_options& conn,
                                            const tool_context& ctx,
                                            bool renew, bool& cached) {
  cached = false;
  switch (conn.auth) {
    case auth_mode::basic: {
      auto password = secret_env(conn, conn.password_env, "password_env");
      if (!password)
        return std::move(password.error());
      auto value = net::base64(conn.username + ":" + *password);
      remember(value);
      return "Basic " + value;
    }
    case auth_mode::token: {
      auto token = secret_env(conn, conn.token_env, "token_env");
      if (!token)
        return std::move(token.error());
      return "Bearer " + *token;
    }
    case auth_mode::jwt:
      break;
  }
  auto i = tokens_.find(conn.name);
  if (i != tokens_.end() && !renew) {
    cached = true;
    return "Bearer " + i->second;
  }
  tokens_.erase(conn.name);
  auto token = fetch_token(conn, ctx);
  if (!token)
    return std::move(token.error());
  tokens_[conn.name] = *token;
  return "Bearer " + *token;
}

expected<json> client::send(const connection_options& conn,
                            const api_call& call, const tool_context& ctx) {
  auto path = conn.api_prefix() + call.path;
  auto what = call.method + " " + path;
  auto req = request(conn, ctx);
  req.method = call.method;
  req.url = net::append_query(conn.base_url + path, call.query);
  req.headers.set("Accept", "application/json");
  if (!call.body.is_null()) {
    req.headers.set("Content-Type", "application/json");
    req.body = call.body.dump();
  }
  bool renewed = false;
  for (;;) {
    bool cached = false;
    if (call.authenticated) {
      auto auth = authorization(conn, ctx, renewed, cached);
      if (!auth)
        return std::move(auth.error());
      req.headers.set("Authorization", std::move(*auth));
    }
    auto resp = net::perform_with_retry(http_, req, retry(conn, call.retry));
    if (!resp)
      return transport_error(conn, resp.error());
    // An expired JWT: renew it once and ask again. A fresh token refused
    // is an answer, not a reason to ask for another.
    if (resp->status == 401 && conn.auth == auth_mode::jwt && cached
        && !renewed) {
      renewed = true;
      continue;
    }
    if (resp->status == 401 && call.authenticated) {
      auto err = status_error(conn, what, *resp);
      return make_error(errc::unauthorized,
                        message_of(err)
                          + (renewed ? " (a renewed token was refused too)"
                                     : " (the credentials of "
                                       "tools.airflow.connections."
                                         + conn.name + " were refused)"));
    }
    if (resp->status < 200 || resp->status > 299)
      return status_error(conn, what, *resp);
    if (resp->body.empty())
      return json{};
    auto doc = json::parse(resp->body, nullptr, false);
    if (doc.is_discarded())
      return make_error(errc::tool_failed,
                        scrub("tool airflow: " + what + " (connection '"
                              + conn.name + "'): the answer is not JSON: "
                              + net::body_excerpt(scrub(resp->body), 200)));
    return doc;
  }
}

} // namespace cadre::tools::airflow
