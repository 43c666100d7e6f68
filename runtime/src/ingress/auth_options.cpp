// parse_auth_options: `server.tokens`, `server.jwt` and CADRE_API_TOKENS.
// No message repeats a token, a secret, a hash or any other value of a token
// entry: a secret pasted into the wrong place must not end up in a log.

#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cadre/runtime/auth.hpp"
#include "ingress/digest.hpp"

namespace cadre::runtime {

namespace {

constexpr const char* env_var = "CADRE_API_TOKENS";

caf::error bad(const std::string& key, const std::string& what) {
  return make_error(errc::invalid_config, key + ": " + what);
}

std::string indexed(const std::string& key, size_t i) {
  return key + "[" + std::to_string(i) + "]";
}

// Names show up in logs, metrics and rate-limit keys: keep them short and
// free of anything a log line would have to escape.
bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64)
    return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'
              || c == ':' || c == '@';
    if (!ok)
      return false;
  }
  return true;
}

constexpr const char* known_scopes = "(known: read, write, admin)";

expected<scope> scope_list(const json& list, const std::string& key) {
  if (!list.is_array() || list.empty())
    return bad(key, "expected a non-empty list of read, write, admin");
  auto best = scope::none;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& x = list[i];
    auto s = x.is_string() ? parse_scope(x.get_ref<const std::string&>())
                           : std::nullopt;
    if (!s)
      return bad(indexed(key, i), std::string{"unknown scope "}
                                    + known_scopes);
    best = std::max(best, *s);
  }
  return best;
}

// A token with where it came from, for messages about duplicates.
struct sourced_token {
  api_token token;
  std::string key;
};

expected<void> read_config_tokens(const json& list,
                                  std::vector<sourced_token>& out) {
  if (!list.is_array())
    return bad("server.tokens", "expected a list of {name, sha256, scopes}");
  for (size_t i = 0; i < list.size(); ++i) {
    auto key = indexed("server.tokens", i);
    const auto& entry = list[i];
    if (!entry.is_object())
      return bad(key, "expected a mapping {name, sha256, scopes}");
    for (auto& [k, v] : entry.items())
      if (k != "name" && k != "sha256" && k != "scopes")
        return bad(key + "." + k, "unknown key (known: name, sha256, scopes)");
    sourced_token t;
    t.key = key;
    auto name = entry.find("name");
    if (name == entry.end())
      return bad(key + ".name", "missing");
    if (!name->is_string() || !valid_name(name->get<std::string>()))
      return bad(key + ".name", "expected 1 to 64 characters of "
                                "[A-Za-z0-9._:@-]");
    t.token.name = name->get<std::string>();
    auto hash = entry.find("sha256");
    if (hash == entry.end())
      return bad(key + ".sha256", "missing (printf %s TOKEN | sha256sum)");
    if (!hash->is_string()
        || !detail::parse_hex_digest(hash->get_ref<const std::string&>(),
                                     t.token.hash))
      return bad(key + ".sha256", "expected 64 hex digits (a quoted string)");
    auto scopes = entry.find("scopes");
    if (scopes == entry.end())
      return bad(key + ".scopes", "missing (a list of read, write, admin)");
    auto granted = scope_list(*scopes, key + ".scopes");
    if (!granted)
      return std::move(granted.error());
    t.token.granted = *granted;
    out.push_back(std::move(t));
  }
  return {};
}

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && space(s.back()))
    s.remove_suffix(1);
  return s;
}

expected<void> read_env_tokens(std::string_view text,
                               std::vector<sourced_token>& out) {
  for (size_t i = 0;; ++i) {
    auto comma = text.find(',');
    auto entry = trim(text.substr(0, comma));
    auto key = indexed(env_var, i);
    if (entry.empty())
      return bad(key, "empty entry (expected TOKEN or TOKEN:scope+scope)");
    auto colon = entry.find(':');
    auto token = entry.substr(0, colon);
    if (token.empty())
      return bad(key, "empty token before ':'");
    for (char c : token)
      if (c <= ' ' || c == 0x7f || static_cast<unsigned char>(c) > 0x7f)
        return bad(key, "a token must be printable ASCII without spaces");
    sourced_token t;
    t.key = key;
    t.token.name = key;
    t.token.granted = scope::admin;
    if (colon != std::string_view::npos) {
      auto scopes = entry.substr(colon + 1);
      if (scopes.empty())
        return bad(key, "empty scope list after ':' (e.g. read+write)");
      t.token.granted = scope::none;
      for (size_t j = 0;; ++j) {
        auto plus = scopes.find('+');
        auto s = parse_scope(scopes.substr(0, plus));
        if (!s)
          return bad(key, "scope " + std::to_string(j + 1) + " is unknown "
                            + known_scopes);
        t.token.granted = std::max(t.token.granted, *s);
        if (plus == std::string_view::npos)
          break;
        scopes.remove_prefix(plus + 1);
      }
    }
    if (!detail::sha256(token, t.token.hash))
      return make_error(errc::internal, key + ": SHA-256 failed");
    out.push_back(std::move(t));
    if (comma == std::string_view::npos)
      break;
    text.remove_prefix(comma + 1);
  }
  return {};
}

expected<std::string> read_file(const std::string& path,
                                const std::string& key) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return bad(key, "cannot read '" + path + "'");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return bad(key, "cannot read '" + path + "'");
  return buf.str();
}

struct pkey_deleter {
  void operator()(EVP_PKEY* x) const noexcept {
    EVP_PKEY_free(x);
  }
};

// Refuses at startup what would fail every request later.
expected<void> check_rsa_public_key(const std::string& pem,
                                    const std::string& path) {
  const auto* key = "server.jwt.public_key_file";
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{
    BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free};
  if (!bio)
    return make_error(errc::internal, std::string{key} + ": out of memory");
  std::unique_ptr<EVP_PKEY, pkey_deleter> pkey{
    PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr)};
  ERR_clear_error();
  if (!pkey)
    return bad(key, "'" + path
                      + "' holds no PEM public key (-----BEGIN PUBLIC "
                        "KEY-----)");
  if (EVP_PKEY_base_id(pkey.get()) != EVP_PKEY_RSA)
    return bad(key, "'" + path + "' is not an RSA key (RS256 needs one)");
  if (EVP_PKEY_get_bits(pkey.get()) < 2048)
    return bad(key, "'" + path + "' has fewer than 2048 bits");
  return {};
}

expected<jwt_options> read_jwt(const json& j) {
  const std::string base = "server.jwt";
  if (!j.is_object())
    return bad(base, "expected a mapping {algorithm, secret_env | "
                     "public_key_file, scopes_claim, issuer, audience, "
                     "leeway_s}");
  static const std::set<std::string> known
    = {"algorithm", "secret_env", "public_key_file", "scopes_claim",
       "issuer",    "audience",   "leeway_s"};
  for (auto& [k, v] : j.items())
    if (known.count(k) == 0)
      return bad(base + "." + k,
                 "unknown key (known: algorithm, secret_env, "
                 "public_key_file, scopes_claim, issuer, audience, "
                 "leeway_s)");
  // A non-empty string under `k`, or nullopt when absent.
  auto text = [&](const char* k) -> expected<std::optional<std::string>> {
    auto it = j.find(k);
    if (it == j.end())
      return std::optional<std::string>{};
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
      return bad(base + "." + k, "expected a non-empty string");
    return std::optional<std::string>{it->get<std::string>()};
  };
  jwt_options out;
  auto alg = j.find("algorithm");
  if (alg == j.end())
    return bad(base + ".algorithm", "missing (HS256 or RS256)");
  if (*alg == "HS256")
    out.algorithm = jwt_algorithm::hs256;
  else if (*alg == "RS256")
    out.algorithm = jwt_algorithm::rs256;
  else
    return bad(base + ".algorithm", "expected HS256 or RS256");
  auto secret_env = text("secret_env");
  if (!secret_env)
    return std::move(secret_env.error());
  auto key_file = text("public_key_file");
  if (!key_file)
    return std::move(key_file.error());
  if (out.algorithm == jwt_algorithm::hs256) {
    if (*key_file)
      return bad(base + ".public_key_file",
                 "only for RS256 (HS256 takes secret_env)");
    if (!*secret_env)
      return bad(base + ".secret_env",
                 "missing (the variable that holds the HS256 secret)");
    const auto& var = **secret_env;
    const char* secret = std::getenv(var.c_str());
    if (secret == nullptr || *secret == '\0')
      return bad(base + ".secret_env",
                 "environment variable '" + var + "' is not set");
    out.key = secret;
    // RFC 7518 3.2: a key at least as long as the hash output.
    if (out.key.size() < 32)
      return bad(base + ".secret_env",
                 "the secret in '" + var
                   + "' has fewer than 32 bytes (HS256 needs 256 bits)");
  } else {
    if (*secret_env)
      return bad(base + ".secret_env",
                 "only for HS256 (RS256 takes public_key_file)");
    if (!*key_file)
      return bad(base + ".public_key_file",
                 "missing (a PEM file with the RSA public key)");
    auto pem = read_file(**key_file, base + ".public_key_file");
    if (!pem)
      return std::move(pem.error());
    if (auto ok = check_rsa_public_key(*pem, **key_file); !ok)
      return std::move(ok.error());
    out.key = std::move(*pem);
  }
  auto claim = text("scopes_claim");
  if (!claim)
    return std::move(claim.error());
  if (*claim)
    out.scopes_claim = std::move(**claim);
  auto issuer = text("issuer");
  if (!issuer)
    return std::move(issuer.error());
  out.issuer = std::move(*issuer);
  auto audience = text("audience");
  if (!audience)
    return std::move(audience.error());
  out.audience = std::move(*audience);
  if (auto it = j.find("leeway_s"); it != j.end()) {
    if (!it->is_number_integer() || *it < 0 || *it > 3600)
      return bad(base + ".leeway_s", "expected whole seconds from 0 to 3600");
    out.leeway = std::chrono::seconds{it->get<int64_t>()};
  }
  return out;
}

} // namespace

expected<auth_options> parse_auth_options(const json& server_section,
                                          const char* env_tokens) {
  if (!server_section.is_null() && !server_section.is_object())
    return bad("server", "expected a mapping");
  auth_options out;
  std::vector<sourced_token> tokens;
  if (server_section.is_object()) {
    if (auto it = server_section.find("tokens"); it != server_section.end())
      if (auto ok = read_config_tokens(*it, tokens); !ok)
        return std::move(ok.error());
    if (auto it = server_section.find("jwt"); it != server_section.end()) {
      auto jwt = read_jwt(*it);
      if (!jwt)
        return std::move(jwt.error());
      out.jwt = std::move(*jwt);
    }
  }
  if (env_tokens != nullptr && *env_tokens != '\0')
    if (auto ok = read_env_tokens(env_tokens, tokens); !ok)
      return std::move(ok.error());
  // Two entries for one token would make its scopes depend on the order;
  // two tokens of one name would share a rate limit and a log identity.
  for (size_t i = 0; i < tokens.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      if (tokens[i].token.hash == tokens[j].token.hash)
        return bad(tokens[i].key, "the same token as " + tokens[j].key);
      if (tokens[i].token.name == tokens[j].token.name)
        return bad(tokens[i].key + ".name",
                   "'" + tokens[i].token.name + "' also names "
                     + tokens[j].key);
    }
  for (auto& t : tokens)
    out.tokens.push_back(std::move(t.token));
  return out;
}

} // namespace cadre::runtime
