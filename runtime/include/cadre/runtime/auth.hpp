#pragma once

// Who may call `cadre serve`, and for what: bearer tokens (hashed in the
// config or given in CADRE_API_TOKENS), JWTs (HS256 or RS256) and the scope
// each route needs (docs/http-api.md, "Authentication"). Pure logic: the
// HTTP server calls it and turns its errors into 401 and 403 answers.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::runtime {

/// What a caller may do. Each scope implies the ones before it: admin
/// allows everything write allows, write everything read allows.
enum class scope : uint8_t {
  none = 0, ///< only the probes (/healthz, /readyz)
  read,     ///< every GET
  write,    ///< submit, cancel and answer executions; store workflows
  admin,    ///< delete workflows, invoke tools directly
};

/// Returns "none", "read", "write" or "admin".
std::string to_string(scope x);

/// Parses "read", "write" or "admin"; nullopt for anything else.
std::optional<scope> parse_scope(std::string_view name);

/// Returns whether `granted` allows what `needed` guards.
constexpr bool satisfies(scope granted, scope needed) noexcept {
  return granted >= needed;
}

/// The scope a request needs. `path` is the request path as routed (a query
/// string is ignored). GET and HEAD of /healthz and /readyz need none, any
/// other GET or HEAD read; POST /v1/executions, POST
/// /v1/executions/{id}/cancel, POST /v1/executions/{id}/input, POST
/// /v1/executions/{id}/fork, POST /v1/imports and PUT /v1/workflows/{name}
/// need write. Everything else, DELETE
/// /v1/workflows/{name} and POST /v1/tools/{name}/invoke among it, needs
/// admin: a request no route answers cannot need less than the strictest.
scope required_scope(std::string_view method, std::string_view path);

/// The SHA-256 of `data` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view data);

/// Compares in time that depends only on the lengths, never on where the
/// inputs first differ (CRYPTO_memcmp).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

using sha256_digest = std::array<uint8_t, 32>;

/// A static bearer token; only its hash is kept.
struct api_token {
  /// Names the token in logs and rate limits; CADRE_API_TOKENS entries are
  /// "CADRE_API_TOKENS[i]".
  std::string name;
  sha256_digest hash{};
  scope granted = scope::none;
};

enum class jwt_algorithm : uint8_t { hs256, rs256 };

/// `server.jwt`.
struct jwt_options {
  jwt_algorithm algorithm = jwt_algorithm::hs256;
  /// HS256: the shared secret (from the variable `secret_env` names).
  /// RS256: the PEM public key (`-----BEGIN PUBLIC KEY-----`) read from
  /// `public_key_file`.
  std::string key;
  /// The claim that lists the scopes, as a space-separated string or an
  /// array of strings; names other than read, write and admin are ignored.
  /// Default: "scope"
  std::string scopes_claim = "scope";
  /// When set, the `iss` claim must equal it.
  std::optional<std::string> issuer;
  /// When set, the `aud` claim (a string or an array) must contain it.
  std::optional<std::string> audience;
  /// Clock skew allowed for `exp` and `nbf`. Default: 30 s
  std::chrono::seconds leeway{30};
};

/// The credentials `cadre serve` accepts.
struct auth_options {
  std::vector<api_token> tokens;
  std::optional<jwt_options> jwt;
};

/// Reads `server.tokens` (a list of {name, sha256, scopes}) and `server.jwt`
/// ({algorithm, secret_env | public_key_file, scopes_claim, issuer,
/// audience, leeway_s}) from the config's `server` section, other keys of
/// which are left to their readers, plus `env_tokens`: the value of
/// CADRE_API_TOKENS (nullptr or "" for none), comma-separated `TOKEN` (all
/// scopes) or `TOKEN:scope+scope` entries, kept only as hashes. Reads the
/// variable `secret_env` names and the file `public_key_file` names.
/// Errors: errc::invalid_config naming the key, e.g.
/// "server.tokens[1].sha256: expected 64 hex digits"; never a token,
/// secret or hash.
[[nodiscard]] expected<auth_options>
parse_auth_options(const json& server_section, const char* env_tokens);

/// How a caller proved who it is.
enum class credential : uint8_t { token, jwt };

/// An authenticated caller.
struct principal {
  /// The token's name, or the JWT's `sub`.
  std::string name;
  scope granted = scope::none;
  credential kind = credential::token;
};

/// Checks `Authorization` headers against auth_options. Immutable after
/// construction, so one instance serves every thread.
class authenticator {
public:
  explicit authenticator(auth_options opts);

  /// Returns whether any token or a JWT key is configured. When not, every
  /// authenticate() fails: the caller decides whether to ask at all.
  bool enabled() const noexcept;

  /// Verifies `authorization` ("Bearer TOKEN"; the header's value, empty
  /// when the request has none) at `now`. Static tokens are tried first,
  /// then, when configured, a JWT. Errors: errc::unauthorized saying what
  /// was wrong ("token unknown", "JWT expired", "JWT signature invalid",
  /// "JWT lacks claim 'scope'", ...), never the token.
  expected<principal>
  authenticate(std::string_view authorization,
               std::chrono::system_clock::time_point now) const;

  /// authenticate() at the current time.
  expected<principal> authenticate(std::string_view authorization) const;

  /// Succeeds when `who` has `needed`. Errors: errc::forbidden naming the
  /// scope needed, e.g. "token 'ci' lacks scope 'admin'".
  static expected<void> authorize(const principal& who, scope needed);

private:
  expected<principal>
  verify_jwt(const std::string& token,
             std::chrono::system_clock::time_point now) const;

  std::vector<api_token> tokens_;
  std::optional<jwt_options> jwt_;
};

} // namespace cadre::runtime
