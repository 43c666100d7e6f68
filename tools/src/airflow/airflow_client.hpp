#pragma once

// The Airflow REST client behind the airflow tool: named connections
// (`tools.airflow.connections.<name>`), authentication (a JWT from
// `POST /auth/token` cached per connection and renewed once on a 401, HTTP
// Basic for Airflow 2, or a static token), retries on 429 and 5xx, and
// errors that name the endpoint and Airflow's problem `detail`, with every
// known secret scrubbed. Private to tools/.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/tools/net/http_client.hpp"
#include "cadre/lang/secrets.hpp"
#include "cadre/tools/tool.hpp"

namespace cadre::tools::airflow {

/// How a connection authenticates.
enum class auth_mode {
  /// `POST /auth/token` with username and password for a JWT (Airflow 3).
  jwt,
  /// HTTP Basic with username and password (Airflow 2's basic_auth).
  basic,
  /// A bearer token read from an environment variable.
  token,
};

/// One Airflow deployment (`tools.airflow.connections.<name>`).
struct connection_options {
  /// The connection's name, for messages and the setting keys they name.
  std::string name;
  /// `base_url`: where the API server answers, without the API path
  /// ("http://airflow:8080", or with a proxy's prefix). Required.
  std::string base_url;
  /// `api_version`: 2 for Airflow 3 (`/api/v2`), 1 for Airflow 2
  /// (`/api/v1`). Default: 2
  int api_version = 2;
  /// `auth`. Default: jwt, or basic with api_version v1
  auth_mode auth = auth_mode::jwt;
  /// `username` (jwt and basic). Default: none
  std::string username;
  /// `password_env`: the environment variable holding the password (jwt
  /// and basic), read when it is needed. Default: none
  std::string password_env;
  /// `token_env`: the environment variable holding the token (auth token).
  /// Default: none
  std::string token_env;
  /// `timeout`: time for one attempt of one request. Default: 30 s
  std::chrono::milliseconds timeout{30'000};
  /// `connect_timeout`. Default: 10 s
  std::chrono::milliseconds connect_timeout{10'000};
  /// `max_retries`: retries after the first attempt on 429, 5xx (but 501
  /// and 505) and connection failures. Default: 2
  uint32_t max_retries = 2;
  /// `retry_backoff`: wait before the first retry, doubled for each next
  /// one (with jitter), unless the server sends Retry-After. Default: 500 ms
  std::chrono::milliseconds retry_backoff{500};

  /// "/api/v2" or "/api/v1".
  std::string api_prefix() const {
    return api_version == 1 ? "/api/v1" : "/api/v2";
  }
};

/// Settings of the airflow tool (`tools.airflow`).
struct airflow_options {
  /// `connections`, by name. Default: none
  std::map<std::string, connection_options> connections;
  /// `page_size`: `limit` of each list request (Airflow caps it at its
  /// `[api] maximum_page_limit`, 100 by default). Default: 100
  uint32_t page_size = 100;
  /// `max_items`: the most runs or task instances one call collects; a
  /// call's `max` may ask for fewer. Default: 10000
  uint64_t max_items = 10'000;
  /// `max_log_bytes`: the most log text one task_log call returns; a
  /// call's `max_bytes` may ask for less. Default: 1 MiB
  uint64_t max_log_bytes = 1u << 20;
  /// `max_response_bytes`: the largest response body accepted. Default:
  /// 32 MiB
  uint64_t max_response_bytes = 32u << 20;
};

/// The JSON Schema of `tools.airflow` (tool_registry checks the settings by
/// it before parse_options reads them).
json settings_schema();

/// Reads `tools.airflow`. Errors: errc::invalid_config naming the key
/// ("tools.airflow.connections.prod.base_url: is required").
[[nodiscard]] expected<airflow_options>
parse_options(const json_value& settings);

/// One request to Airflow.
struct api_call {
  /// Default: GET
  std::string method = "GET";
  /// The path below the API prefix ("/dags/etl/details"), its segments
  /// percent-encoded (segment()).
  std::string path;
  /// Encoded query pairs ("state=failed&limit=100"), or empty.
  std::string query;
  /// A JSON request body (sent when not null).
  json body;
  /// Send credentials (false for /version and /monitor/health).
  /// Default: true
  bool authenticated = true;
  /// Retry on 429, 5xx and connection failures (false for requests that
  /// must not repeat). Default: true
  bool retry = true;
};

/// A path segment, percent-encoded ("manual__2025-01-01T00:00:00+00:00"
/// becomes "manual__2025-01-01T00%3A00%3A00%2B00%3A00"; "~" stays).
std::string segment(std::string_view text);

/// Airflow's problem `detail` of an error body: the string, a validation
/// error list as "loc: msg; ...", an object as compact JSON, or the start
/// of a body that is none of these.
std::string problem_detail(std::string_view body);

/// The cadre code of a final HTTP status: 400 and 422 invalid_input, 401
/// unauthorized, 403 forbidden, 404 not_found, 409 conflict, 429
/// rate_limited, 5xx unavailable, others tool_failed.
errc status_code(long status) noexcept;

/// Talks to the configured connections. One per tool instance, so one
/// worker at a time: not thread-safe.
class client {
public:
  explicit client(airflow_options opts);

  const airflow_options& options() const noexcept {
    return opts_;
  }

  /// The connection `name`; errc::invalid_input naming /connection and the
  /// configured names when there is none.
  [[nodiscard]] expected<const connection_options*>
  connection(const std::string& name) const;

  /// Performs `call` and returns the JSON body of a 2xx answer. With auth
  /// jwt, a cached token refused with 401 is renewed once and the request
  /// sent again. Errors name the method, the path and the connection:
  /// status_code() for an error status (with Airflow's detail), the
  /// http_client's codes for transport failures, errc::invalid_config for
  /// a missing credential variable, errc::tool_failed for a body that is not
  /// JSON. No error text holds a credential.
  [[nodiscard]] expected<json> send(const connection_options& conn,
                                    const api_call& call,
                                    const tool_context& ctx);

  /// Replaces every credential this client has read (passwords, tokens) in
  /// every string of `x`, keys included.
  void scrub(json& x) const;

  /// `text` with every credential this client has read replaced.
  std::string scrub(std::string text) const;

private:
  /// The Authorization header value for `conn`; `renew` fetches a new JWT
  /// even when one is cached. `cached` tells whether a JWT came from the
  /// cache.
  expected<std::string> authorization(const connection_options& conn,
                                      const tool_context& ctx, bool renew,
                                      bool& cached);

  /// `POST /auth/token`: a fresh JWT for `conn`.
  expected<std::string> fetch_token(const connection_options& conn,
                                    const tool_context& ctx);

  /// The value of the variable `var` named by `key` of `conn`; remembered
  /// as a secret.
  expected<std::string> secret_env(const connection_options& conn,
                                   const std::string& var,
                                   std::string_view key);

  net::http_request request(const connection_options& conn,
                            const tool_context& ctx) const;
  net::retry_policy retry(const connection_options& conn, bool on) const;

  /// The error of a final non-2xx response to `method path`.
  caf::error status_error(const connection_options& conn,
                          const std::string& what,
                          const net::http_response& resp) const;

  /// The error of a transport failure, prefixed and scrubbed.
  caf::error transport_error(const connection_options& conn,
                             const caf::error& err) const;

  void remember(const std::string& secret);

  airflow_options opts_;
  net::http_client http_;
  /// JWTs by connection name.
  std::map<std::string, std::string> tokens_;
  /// Every credential read so far, scrubbed from messages and outputs.
  secret_store secrets_;
};

} // namespace cadre::tools::airflow
