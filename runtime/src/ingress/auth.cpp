#include "cadre/runtime/auth.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "ingress/digest.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::runtime {

namespace detail {

bool sha256(std::string_view data, sha256_digest& out) noexcept {
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(),
                 nullptr)
        != 1
      || len != out.size()) {
    ERR_clear_error();
    return false;
  }
  return true;
}

bool parse_hex_digest(std::string_view hex, sha256_digest& out) noexcept {
  if (hex.size() != 2 * out.size())
    return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    auto hi = nibble(hex[2 * i]);
    auto lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

} // namespace detail

namespace {

// Longer than any token or JWT we issue or expect; bounds the work an
// unauthenticated request can cause.
constexpr size_t max_token_bytes = 8192;

caf::error unauthorized(std::string what) {
  return make_error(errc::unauthorized, std::move(what));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size()
         && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
              auto lower = [](char c) {
                return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a')
                                            : c;
              };
              return lower(x) == lower(y);
            });
}

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

// The token of "Bearer TOKEN" (RFC 6750 2.1; the scheme is case-insensitive
// per RFC 9110 11.1).
expected<std::string_view> bearer_token(std::string_view header) {
  while (!header.empty() && is_space(header.front()))
    header.remove_prefix(1);
  while (!header.empty() && is_space(header.back()))
    header.remove_suffix(1);
  if (header.empty())
    return unauthorized("missing Authorization header");
  auto sp = header.find_first_of(" \t");
  if (!iequals(header.substr(0, sp), "Bearer"))
    return unauthorized("Authorization scheme is not Bearer");
  if (sp == std::string_view::npos)
    return unauthorized("bearer token is empty");
  auto token = header.substr(sp);
  while (!token.empty() && is_space(token.front()))
    token.remove_prefix(1);
  if (token.size() > max_token_bytes)
    return unauthorized("bearer token is longer than "
                        + std::to_string(max_token_bytes) + " bytes");
  for (char c : token)
    if (c <= ' ' || c == 0x7f)
      return unauthorized("bearer token is malformed");
  return token;
}

// Base64url without padding (RFC 7515 2).
bool base64url_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1)
    return false;
  out.clear();
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-')
      v = 62;
    else if (c == '_')
      v = 63;
    else
      return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

json decode_segment(std::string_view segment) {
  std::string text;
  if (!base64url_decode(segment, text))
    return json{};
  auto doc = try_parse_json(text);
  return doc.is_object() ? doc : json{};
}

const char* alg_name(jwt_algorithm x) {
  return x == jwt_algorithm::hs256 ? "HS256" : "RS256";
}

jwt_alg_t libjwt_alg(jwt_algorithm x) {
  return x == jwt_algorithm::hs256 ? JWT_ALG_HS256 : JWT_ALG_RS256;
}

// An algorithm name safe to repeat in a message (and in a log).
bool printable_alg(const std::string& s) {
  return !s.empty() && s.size() <= 10
         && std::all_of(s.begin(), s.end(), [](char c) {
              return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                     || (c >= '0' && c <= '9');
            });
}

struct jwt_deleter {
  void operator()(jwt_t* x) const noexcept {
    jwt_free(x);
  }
};

} // namespace

std::string to_string(scope x) {
  switch (x) {
    case scope::none:
      return "none";
    case scope::read:
      return "read";
    case scope::write:
      return "write";
    case scope::admin:
      return "admin";
  }
  return "unknown";
}

std::optional<scope> parse_scope(std::string_view name) {
  if (name == "read")
    return scope::read;
  if (name == "write")
    return scope::write;
  if (name == "admin")
    return scope::admin;
  return std::nullopt;
}

scope required_scope(std::string_view method, std::string_view path) {
  if (auto q = path.find_first_of("?#"); q != std::string_view::npos)
    path = path.substr(0, q);
  if (method == "GET" || method == "HEAD")
    return path == "/healthz" || path == "/readyz" ? scope::none
                                                   : scope::read;
  // Only exact matches of the write routes need less than admin: a path
  // with an empty, "." or ".." segment matches none of them, whatever the
  // router makes of it.
  std::vector<std::string_view> seg;
  if (path.empty() || path.front() != '/')
    return scope::admin;
  for (size_t pos = 1;;) {
    auto next = path.find('/', pos);
    auto s = path.substr(pos, next == std::string_view::npos
                                ? std::string_view::npos
                                : next - pos);
    if (s.empty() || s == "." || s == "..")
      return scope::admin;
    seg.push_back(s);
    if (next == std::string_view::npos)
      break;
    pos = next + 1;
  }
  if (seg.size() < 2 || seg[0] != "v1")
    return scope::admin;
  if (method == "POST" && seg[1] == "executions") {
    if (seg.size() == 2)
      return scope::write;
    if (seg.size() == 4
        && (seg[3] == "cancel" || seg[3] == "input" || seg[3] == "fork"))
      return scope::write;
  }
  if (method == "POST" && seg[1] == "imports" && seg.size() == 2)
    return scope::write;
  if (method == "PUT" && seg[1] == "workflows" && seg.size() == 3)
    return scope::write;
  return scope::admin;
}

std::string sha256_hex(std::string_view data) {
  sha256_digest d;
  if (!detail::sha256(data, d))
    return {};
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * d.size());
  for (auto b : d) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xf]);
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size()
         && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

authenticator::authenticator(auth_options opts)
  : tokens_(std::move(opts.tokens)), jwt_(std::move(opts.jwt)) {
  // nop
}

bool authenticator::enabled() const noexcept {
  return !tokens_.empty() || jwt_.has_value();
}

expected<principal>
authenticator::authenticate(std::string_view authorization) const {
  return authenticate(authorization, std::chrono::system_clock::now());
}

expected<principal>
authenticator::authenticate(std::string_view authorization,
                            std::chrono::system_clock::time_point now) const {
  if (!enabled())
    return unauthorized("no tokens are configured");
  auto token = bearer_token(authorization);
  if (!token)
    return std::move(token.error());
  sha256_digest hash;
  if (!detail::sha256(*token, hash))
    return make_error(errc::internal, "SHA-256 failed");
  // Every token is compared, so the time taken says nothing about which
  // one matched, if any.
  const api_token* found = nullptr;
  for (const auto& t : tokens_) {
    auto same = CRYPTO_memcmp(t.hash.data(), hash.data(), hash.size()) == 0;
    if (same && found == nullptr)
      found = &t;
  }
  if (found != nullptr)
    return principal{found->name, found->granted, credential::token};
  if (jwt_ && std::count(token->begin(), token->end(), '.') == 2)
    return verify_jwt(std::string{*token}, now);
  return unauthorized("token unknown");
}

expected<principal>
authenticator::verify_jwt(const std::string& token,
                          std::chrono::system_clock::time_point now) const {
  const auto& opts = *jwt_;
  auto dot1 = token.find('.');
  auto dot2 = token.find('.', dot1 + 1);
  // The header is read before the signature is checked, to refuse "none"
  // and any algorithm but the configured one: an RS256 public key used as
  // an HS256 secret would otherwise verify a forged token.
  auto header = decode_segment(std::string_view{token}.substr(0, dot1));
  if (!header.is_object())
    return unauthorized("JWT malformed: header is not a JSON object");
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string())
    return unauthorized("JWT header lacks 'alg'");
  const auto& alg_str = alg->get_ref<const std::string&>();
  if (iequals(alg_str, "none"))
    return unauthorized("JWT algorithm 'none' is not accepted");
  if (alg_str != alg_name(opts.algorithm))
    return unauthorized("JWT algorithm "
                        + (printable_alg(alg_str) ? "'" + alg_str + "' "
                                                  : std::string{})
                        + "is not the configured "
                        + alg_name(opts.algorithm));
  if (header.contains("crit"))
    return unauthorized("JWT header 'crit' is not supported");
  if (auto typ = header.find("typ");
      typ != header.end()
      && (!typ->is_string()
          || !iequals(typ->get_ref<const std::string&>(), "JWT")))
    return unauthorized("JWT header 'typ' is not JWT");
  jwt_t* raw = nullptr;
  auto rc = jwt_decode(&raw, token.c_str(),
                       reinterpret_cast<const unsigned char*>(opts.key.data()),
                       static_cast<int>(opts.key.size()));
  std::unique_ptr<jwt_t, jwt_deleter> decoded{raw};
  ERR_clear_error();
  if (rc != 0 || !decoded)
    return unauthorized("JWT signature invalid");
  if (jwt_get_alg(decoded.get()) != libjwt_alg(opts.algorithm))
    return unauthorized("JWT algorithm is not the configured "
                        + std::string{alg_name(opts.algorithm)});
  // The signature covers these bytes, so reading them again is as good as
  // asking libjwt for each claim.
  auto claims = decode_segment(
    std::string_view{token}.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!claims.is_object())
    return unauthorized("JWT malformed: payload is not a JSON object");
  auto now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  auto leeway = static_cast<double>(opts.leeway.count());
  auto exp = claims.find("exp");
  if (exp == claims.end())
    return unauthorized("JWT lacks claim 'exp'");
  if (!exp->is_number())
    return unauthorized("JWT claim 'exp' is not a number");
  if (now_s >= exp->get<double>() + leeway)
    return unauthorized("JWT expired");
  if (auto nbf = claims.find("nbf"); nbf != claims.end()) {
    if (!nbf->is_number())
      return unauthorized("JWT claim 'nbf' is not a number");
    if (now_s + leeway < nbf->get<double>())
      return unauthorized("JWT not valid yet (nbf)");
  }
  if (opts.issuer) {
    auto iss = claims.find("iss");
    if (iss == claims.end())
      return unauthorized("JWT lacks claim 'iss'");
    if (!iss->is_string() || *iss != *opts.issuer)
      return unauthorized("JWT issuer does not match");
  }
  if (opts.audience) {
    auto aud = claims.find("aud");
    if (aud == claims.end())
      return unauthorized("JWT lacks claim 'aud'");
    auto match = [&](const json& x) {
      return x.is_string() && x == *opts.audience;
    };
    bool ok = match(*aud)
              || (aud->is_array()
                  && std::any_of(aud->begin(), aud->end(), match));
    if (!ok)
      return unauthorized("JWT audience does not match");
  }
  auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string()
      || sub->get_ref<const std::string&>().empty())
    return unauthorized("JWT lacks claim 'sub'");
  auto sc = claims.find(opts.scopes_claim);
  if (sc == claims.end())
    return unauthorized("JWT lacks claim '" + opts.scopes_claim + "'");
  principal out{sub->get<std::string>(), scope::none, credential::jwt};
  auto add = [&out](std::string_view name) {
    if (auto s = parse_scope(name))
      out.granted = std::max(out.granted, *s);
  };
  if (sc->is_string()) {
    std::string_view list = sc->get_ref<const std::string&>();
    while (!list.empty()) {
      auto sp = list.find(' ');
      add(list.substr(0, sp));
      list = sp == std::string_view::npos ? std::string_view{}
                                          : list.substr(sp + 1);
    }
  } else if (sc->is_array()) {
    for (const auto& x : *sc) {
      if (!x.is_string())
        return unauthorized("JWT claim '" + opts.scopes_claim
                            + "' is not a string or a list of strings");
      add(x.get_ref<const std::string&>());
    }
  } else {
    return unauthorized("JWT claim '" + opts.scopes_claim
                        + "' is not a string or a list of strings");
  }
  return out;
}

expected<void> authenticator::authorize(const principal& who, scope needed) {
  if (satisfies(who.granted, needed))
    return {};
  return make_error(errc::forbidden,
                    std::string{who.kind == credential::jwt ? "JWT subject"
                                                            : "token"}
                      + " '" + who.name + "' lacks scope '"
                      + to_string(needed) + "'");
}

} // namespace cadre::runtime
