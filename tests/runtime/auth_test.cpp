// The door of `cadre serve`: the scope of every route in docs/http-api.md,
// token hashes, the config and CADRE_API_TOKENS forms, and JWTs (HS256 and
// RS256) signed here with libjwt and keys made here with OpenSSL.

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cadre/runtime/auth.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace cadre::runtime;
using namespace std::chrono_literals;

namespace {

// 2023-11-14T22:13:20Z: every JWT test runs at this instant.
const auto t0 = std::chrono::system_clock::time_point{1'700'000'000s};
constexpr int64_t t0_s = 1'700'000'000;

// At least 32 bytes, as HS256 keys must be.
constexpr const char* hs_secret = "an-hs256-secret-of-32-bytes-or-more!";
constexpr const char* hs_secret_var = "CADRE_TEST_AUTH_HS256_SECRET";

std::string base64url(std::string_view in) {
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0)
    out.push_back(alphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

// A JWT over `claims` signed by libjwt with `alg` and `key`.
std::string sign(const json& claims, jwt_alg_t alg, std::string_view key) {
  jwt_t* raw = nullptr;
  EXPECT_EQ(jwt_new(&raw), 0);
  std::unique_ptr<jwt_t, decltype(&jwt_free)> jwt{raw, jwt_free};
  EXPECT_EQ(jwt_add_grants_json(jwt.get(), claims.dump().c_str()), 0);
  EXPECT_EQ(jwt_set_alg(jwt.get(), alg,
                        key.empty() ? nullptr
                                    : reinterpret_cast<const unsigned char*>(
                                      key.data()),
                        static_cast<int>(key.size())),
            0);
  char* text = jwt_encode_str(jwt.get());
  EXPECT_NE(text, nullptr);
  std::string out = text ? text : "";
  free(text);
  return out;
}

std::string hs256(const json& claims, std::string_view secret = hs_secret) {
  return sign(claims, JWT_ALG_HS256, secret);
}

// Claims that pass every check of the default HS256 options.
json good_claims() {
  return {{"sub", "ada"}, {"exp", t0_s + 600}, {"scope", "read write"}};
}

struct rsa_pair {
  std::string private_pem;
  std::string public_pem;
};

rsa_pair make_rsa(unsigned bits = 2048) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{EVP_RSA_gen(bits),
                                                          EVP_PKEY_free};
  EXPECT_TRUE(key);
  auto pem = [&](bool priv) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio{BIO_new(BIO_s_mem()),
                                                  BIO_free};
    auto ok = priv ? PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr,
                                              nullptr, 0, nullptr, nullptr)
                   : PEM_write_bio_PUBKEY(bio.get(), key.get());
    EXPECT_EQ(ok, 1);
    char* data = nullptr;
    auto len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
  };
  return {pem(true), pem(false)};
}

// Two keys for the whole suite: RSA key generation is the slow part.
const rsa_pair& rsa_key() {
  static const auto pair = make_rsa();
  return pair;
}

const rsa_pair& other_rsa_key() {
  static const auto pair = make_rsa();
  return pair;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary};
  out << text;
}

std::string env_name(size_t i) {
  return "CADRE_API_TOKENS[" + std::to_string(i) + "]";
}

// The message of a config that must fail with errc::invalid_config.
std::string config_error(const json& server, const char* env = nullptr) {
  auto opts = parse_auth_options(server, env);
  if (opts) {
    ADD_FAILURE() << "accepted: " << server.dump() << " env "
                  << (env ? env : "(none)");
    return {};
  }
  EXPECT_EQ(code_of(opts.error()), errc::invalid_config);
  return message_of(opts.error());
}

authenticator make_auth(const json& server, const char* env = nullptr) {
  auto opts = parse_auth_options(server, env);
  EXPECT_TRUE(opts) << describe(opts.error());
  return authenticator{opts ? std::move(*opts) : auth_options{}};
}

json hs_config(json extra = json::object()) {
  json jwt = {{"algorithm", "HS256"}, {"secret_env", hs_secret_var}};
  jwt.merge_patch(extra); // null removes a key
  return {{"jwt", jwt}};
}

class Auth : public testing::Test {
protected:
  void SetUp() override {
    setenv(hs_secret_var, hs_secret, 1);
  }

  void TearDown() override {
    unsetenv(hs_secret_var);
  }

  // The message of a rejected `token` at t0; it must be errc::unauthorized
  // and must not repeat the token.
  static std::string rejected(const authenticator& auth,
                              const std::string& token) {
    auto who = auth.authenticate("Bearer " + token, t0);
    if (who) {
      ADD_FAILURE() << "accepted as " << who->name;
      return {};
    }
    EXPECT_EQ(code_of(who.error()), errc::unauthorized);
    auto msg = message_of(who.error());
    EXPECT_EQ(msg.find(token), std::string::npos) << msg;
    return msg;
  }
};

} // namespace

TEST_F(Auth, ScopesImplyTheLowerOnes) {
  EXPECT_TRUE(satisfies(scope::admin, scope::write));
  EXPECT_TRUE(satisfies(scope::admin, scope::read));
  EXPECT_TRUE(satisfies(scope::write, scope::read));
  EXPECT_TRUE(satisfies(scope::read, scope::none));
  EXPECT_FALSE(satisfies(scope::read, scope::write));
  EXPECT_FALSE(satisfies(scope::write, scope::admin));
  EXPECT_FALSE(satisfies(scope::none, scope::read));
  for (auto s : {scope::read, scope::write, scope::admin})
    EXPECT_EQ(parse_scope(to_string(s)), s);
  EXPECT_EQ(parse_scope("none"), std::nullopt);
  EXPECT_EQ(parse_scope("Read"), std::nullopt);
}

TEST_F(Auth, RequiredScopeOfEveryDocumentedRoute) {
  struct route {
    const char* method;
    const char* path;
    scope needed;
  };
  const route routes[] = {
    {"GET", "/healthz", scope::none},
    {"HEAD", "/healthz", scope::none},
    {"GET", "/readyz", scope::none},
    {"GET", "/metrics", scope::read},
    {"GET", "/openapi.json", scope::read},
    {"PUT", "/v1/workflows/hello", scope::write},
    {"GET", "/v1/workflows", scope::read},
    {"GET", "/v1/workflows/hello", scope::read},
    {"GET", "/v1/workflows/hello?version=1", scope::read},
    {"DELETE", "/v1/workflows/hello", scope::admin},
    {"POST", "/v1/executions", scope::write},
    {"POST", "/v1/executions?wait=30", scope::write},
    {"GET", "/v1/executions?status=waiting&workflow=hello", scope::read},
    {"GET", "/v1/executions/e0193c1f2a4b17c3e9a", scope::read},
    {"POST", "/v1/executions/e0193c1f2a4b17c3e9a/cancel", scope::write},
    {"POST", "/v1/executions/e0193c1f2a4b17c3e9a/input", scope::write},
    {"POST", "/v1/executions/e0193c1f2a4b17c3e9a/fork", scope::write},
    {"GET", "/v1/executions/e0193c1f2a4b17c3e9a/state?at=3", scope::read},
    {"GET", "/v1/executions/e0193c1f2a4b17c3e9a/diff/e0193c1f2a4b17c3e9b",
     scope::read},
    {"GET", "/v1/executions/e0193c1f2a4b17c3e9a/export", scope::read},
    {"POST", "/v1/imports", scope::write},
    {"GET", "/v1/executions/e0193c1f2a4b17c3e9a/events?after=0",
     scope::read},
    {"GET", "/v1/events", scope::read},
    {"GET", "/v1/schedules", scope::read},
    {"GET", "/v1/nodes", scope::read},
    {"GET", "/v1/tools", scope::read},
    {"POST", "/v1/tools/echo/invoke", scope::admin},
    {"GET", "/v1/agents", scope::read},
    {"GET", "/v1/agents/e0193c1f2a4b17c3e9a/researcher", scope::read},
    {"GET", "/v1/tree", scope::read},
  };
  for (const auto& r : routes)
    EXPECT_EQ(required_scope(r.method, r.path), r.needed)
      << r.method << " " << r.path;
}

TEST_F(Auth, RequiredScopeOfAnythingElseIsAdmin) {
  const std::pair<const char*, const char*> others[] = {
    {"POST", "/healthz"},
    {"DELETE", "/readyz"},
    {"POST", "/v1/executions/"},
    {"POST", "/v1/executions/../cancel"},
    {"POST", "/v1/executions/./input"},
    {"POST", "/v1/executions//cancel"},
    {"POST", "/v1/executions/e1/cancel/more"},
    {"POST", "/v1/executions/e1/fork/more"},
    {"POST", "/v1/executions/../fork"},
    {"POST", "/v1/imports/e1"},
    {"PUT", "/v1/imports"},
    {"POST", "v1/executions"},
    {"POST", ""},
    {"post", "/v1/executions"},
    {"PATCH", "/v1/workflows/hello"},
    {"PUT", "/v1/workflows"},
    {"PUT", "/v1/workflows/hello/1"},
    {"DELETE", "/v1/executions/e1"},
    {"OPTIONS", "/v1/tools"},
    {"POST", "/v2/executions"},
  };
  for (const auto& [method, path] : others)
    EXPECT_EQ(required_scope(method, path), scope::admin)
      << method << " " << path;
  // A probe is only a probe with its exact path.
  EXPECT_EQ(required_scope("GET", "/healthz/"), scope::read);
  EXPECT_EQ(required_scope("GET", "/healthz/../v1/tree"), scope::read);
}

TEST_F(Auth, Sha256HexMatchesKnownVectors) {
  EXPECT_EQ(sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')).size(), 64u);
}

TEST_F(Auth, ConstantTimeEqualComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
  EXPECT_FALSE(constant_time_equal("xbc", "abc"));
}

TEST_F(Auth, ConfigTokensAuthenticateByHash) {
  auto upper = sha256_hex("ops-token");
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  json server = {{"listen", "127.0.0.1:8700"},
                 {"tokens",
                  {{{"name", "ci"},
                    {"sha256", sha256_hex("ci-token")},
                    {"scopes", {"read", "write"}}},
                   {{"name", "ops@example"},
                    {"sha256", upper},
                    {"scopes", {"admin"}}}}}};
  auto opts = parse_auth_options(server, nullptr);
  ASSERT_TRUE(opts) << describe(opts.error());
  ASSERT_EQ(opts->tokens.size(), 2u);
  EXPECT_FALSE(opts->jwt);
  authenticator auth{std::move(*opts)};
  EXPECT_TRUE(auth.enabled());
  auto ci = auth.authenticate("Bearer ci-token", t0);
  ASSERT_TRUE(ci) << describe(ci.error());
  EXPECT_EQ(ci->name, "ci");
  EXPECT_EQ(ci->granted, scope::write);
  EXPECT_EQ(ci->kind, credential::token);
  // The scheme is case-insensitive; spaces around the token do not count.
  auto ops = auth.authenticate("  bearer   ops-token \t", t0);
  ASSERT_TRUE(ops) << describe(ops.error());
  EXPECT_EQ(ops->name, "ops@example");
  EXPECT_EQ(ops->granted, scope::admin);
  EXPECT_EQ(rejected(auth, "ci-token2"), "token unknown");
  EXPECT_EQ(rejected(auth, "CI-TOKEN"), "token unknown");
}

TEST_F(Auth, EnvTokensAreHashedWithTheirScopes) {
  const char* env = "s3cret:read+write, other:read ,root,w:write+read";
  auto opts = parse_auth_options(json::object(), env);
  ASSERT_TRUE(opts) << describe(opts.error());
  ASSERT_EQ(opts->tokens.size(), 4u);
  const std::pair<const char*, scope> want[] = {{"s3cret", scope::write},
                                                {"other", scope::read},
                                                {"root", scope::admin},
                                                {"w", scope::write}};
  for (size_t i = 0; i < 4; ++i) {
    const auto& t = opts->tokens[i];
    EXPECT_EQ(t.name, env_name(i));
    EXPECT_EQ(t.granted, want[i].second);
    sha256_digest expected_hash;
    auto hex = sha256_hex(want[i].first);
    for (size_t b = 0; b < expected_hash.size(); ++b)
      expected_hash[b] = static_cast<uint8_t>(
        std::stoi(hex.substr(2 * b, 2), nullptr, 16));
    EXPECT_EQ(t.hash, expected_hash) << t.name;
  }
  authenticator auth{std::move(*opts)};
  auto who = auth.authenticate("Bearer other", t0);
  ASSERT_TRUE(who) << describe(who.error());
  EXPECT_EQ(who->name, "CADRE_API_TOKENS[1]");
  EXPECT_EQ(who->granted, scope::read);
  // A plain token may not be used with its scope suffix.
  EXPECT_EQ(rejected(auth, "other:read"), "token unknown");
  // An empty variable is no tokens.
  auto none = parse_auth_options(json::object(), "");
  ASSERT_TRUE(none);
  EXPECT_FALSE(authenticator{std::move(*none)}.enabled());
}

TEST_F(Auth, EnvTokensRejectEachBadForm) {
  struct bad_form {
    const char* env;
    std::string message;
    const char* secret; // must not show up in the message
  };
  const std::string known = "(known: read, write, admin)";
  const bad_form forms[] = {
    {"tok1,,tok2", env_name(1)
                     + ": empty entry (expected TOKEN or TOKEN:scope+scope)",
     "tok1"},
    {"tok1,", env_name(1)
                + ": empty entry (expected TOKEN or TOKEN:scope+scope)",
     "tok1"},
    {":read", env_name(0) + ": empty token before ':'", nullptr},
    {"hunter2:", env_name(0) + ": empty scope list after ':' (e.g. read+write)",
     "hunter2"},
    {"ok,hunter2:reed", env_name(1) + ": scope 1 is unknown " + known,
     "hunter2"},
    {"hunter2:read+", env_name(0) + ": scope 2 is unknown " + known,
     "hunter2"},
    // A token and its scope swapped: the token is not repeated as a scope.
    {"read:hunter2", env_name(0) + ": scope 1 is unknown " + known,
     "hunter2"},
    {"hunter 2:read", env_name(0)
                        + ": a token must be printable ASCII without spaces",
     "hunter"},
    {"hunter2:read,hunter2:admin",
     env_name(1) + ": the same token as " + env_name(0), "hunter2"},
  };
  for (const auto& f : forms) {
    auto msg = config_error(json::object(), f.env);
    EXPECT_EQ(msg, f.message) << f.env;
    if (f.secret != nullptr) {
      EXPECT_EQ(msg.find(f.secret), std::string::npos) << msg;
    }
  }
}

TEST_F(Auth, ConfigTokensRejectEachBadForm) {
  const auto hash = sha256_hex("tok");
  auto entry = [&](json patch) {
    json e = {{"name", "ci"}, {"sha256", hash}, {"scopes", {"read"}}};
    e.merge_patch(patch);
    return json{{"tokens", {e}}};
  };
  const std::string name_rule
    = "expected 1 to 64 characters of [A-Za-z0-9._:@-]";
  const std::pair<json, std::string> forms[] = {
    {json::array(), "server: expected a mapping"},
    {{{"tokens", "tok"}},
     "server.tokens: expected a list of {name, sha256, scopes}"},
    {{{"tokens", {"tok"}}},
     "server.tokens[0]: expected a mapping {name, sha256, scopes}"},
    {entry({{"name", nullptr}}), "server.tokens[0].name: missing"},
    {entry({{"name", "c i"}}), "server.tokens[0].name: " + name_rule},
    {entry({{"name", std::string(65, 'n')}}),
     "server.tokens[0].name: " + name_rule},
    {entry({{"sha256", nullptr}}),
     "server.tokens[0].sha256: missing (printf %s TOKEN | sha256sum)"},
    {entry({{"sha256", hash.substr(1)}}),
     "server.tokens[0].sha256: expected 64 hex digits (a quoted string)"},
    {entry({{"sha256", "g" + hash.substr(1)}}),
     "server.tokens[0].sha256: expected 64 hex digits (a quoted string)"},
    {entry({{"sha256", 12345}}),
     "server.tokens[0].sha256: expected 64 hex digits (a quoted string)"},
    {entry({{"scopes", nullptr}}),
     "server.tokens[0].scopes: missing (a list of read, write, admin)"},
    {entry({{"scopes", json::array()}}),
     "server.tokens[0].scopes: expected a non-empty list of read, write, "
     "admin"},
    {entry({{"scopes", "read"}}),
     "server.tokens[0].scopes: expected a non-empty list of read, write, "
     "admin"},
    {entry({{"scopes", {"read", "reed"}}}),
     "server.tokens[0].scopes[1]: unknown scope (known: read, write, "
     "admin)"},
    {entry({{"scope", {"read"}}}),
     "server.tokens[0].scope: unknown key (known: name, sha256, scopes)"},
    {{{"tokens",
       {{{"name", "ci"}, {"sha256", hash}, {"scopes", {"read"}}},
        {{"name", "ci"}, {"sha256", sha256_hex("x")}, {"scopes", {"read"}}}}}},
     "server.tokens[1].name: 'ci' also names server.tokens[0]"},
    {{{"tokens",
       {{{"name", "a"}, {"sha256", hash}, {"scopes", {"read"}}},
        {{"name", "b"}, {"sha256", hash}, {"scopes", {"admin"}}}}}},
     "server.tokens[1]: the same token as server.tokens[0]"},
  };
  for (const auto& [server, message] : forms) {
    auto msg = config_error(server);
    EXPECT_EQ(msg, message) << server.dump();
    EXPECT_EQ(msg.find(hash.substr(1, 16)), std::string::npos) << msg;
  }
  // The same token in the config and in the environment.
  auto msg = config_error(entry(json::object()), "tok:admin");
  EXPECT_EQ(msg, env_name(0) + ": the same token as server.tokens[0]");
}

TEST_F(Auth, JwtConfigRejectsEachBadForm) {
  test::temp_dir dir;
  auto pub = dir / "pub.pem";
  auto priv = dir / "priv.pem";
  auto small = dir / "small.pem";
  write_file(pub, rsa_key().public_pem);
  write_file(priv, rsa_key().private_pem);
  write_file(small, make_rsa(1024).public_pem);
  auto rs = [&](json extra) {
    json jwt = {{"algorithm", "RS256"}, {"public_key_file", pub}};
    jwt.merge_patch(extra);
    return json{{"jwt", jwt}};
  };
  setenv("CADRE_TEST_AUTH_SHORT", "short-secret", 1);
  unsetenv("CADRE_TEST_AUTH_UNSET");
  const std::pair<json, std::string> forms[] = {
    {{{"jwt", "HS256"}},
     "server.jwt: expected a mapping {algorithm, secret_env | "
     "public_key_file, scopes_claim, issuer, audience, leeway_s}"},
    {hs_config({{"algorithm", nullptr}}),
     "server.jwt.algorithm: missing (HS256 or RS256)"},
    {hs_config({{"algorithm", "HS512"}}),
     "server.jwt.algorithm: expected HS256 or RS256"},
    {hs_config({{"algorithm", "none"}}),
     "server.jwt.algorithm: expected HS256 or RS256"},
    {hs_config({{"audiance", "x"}}),
     "server.jwt.audiance: unknown key (known: algorithm, secret_env, "
     "public_key_file, scopes_claim, issuer, audience, leeway_s)"},
    {json{{"jwt", {{"algorithm", "HS256"}}}},
     "server.jwt.secret_env: missing (the variable that holds the HS256 "
     "secret)"},
    {hs_config({{"secret_env", "CADRE_TEST_AUTH_UNSET"}}),
     "server.jwt.secret_env: environment variable 'CADRE_TEST_AUTH_UNSET' "
     "is not set"},
    {hs_config({{"secret_env", "CADRE_TEST_AUTH_SHORT"}}),
     "server.jwt.secret_env: the secret in 'CADRE_TEST_AUTH_SHORT' has "
     "fewer than 32 bytes (HS256 needs 256 bits)"},
    {hs_config({{"public_key_file", pub}}),
     "server.jwt.public_key_file: only for RS256 (HS256 takes secret_env)"},
    {hs_config({{"scopes_claim", ""}}),
     "server.jwt.scopes_claim: expected a non-empty string"},
    {hs_config({{"issuer", 7}}),
     "server.jwt.issuer: expected a non-empty string"},
    {hs_config({{"leeway_s", -1}}),
     "server.jwt.leeway_s: expected whole seconds from 0 to 3600"},
    {hs_config({{"leeway_s", "30"}}),
     "server.jwt.leeway_s: expected whole seconds from 0 to 3600"},
    {rs({{"public_key_file", nullptr}}),
     "server.jwt.public_key_file: missing (a PEM file with the RSA public "
     "key)"},
    {rs({{"secret_env", hs_secret_var}}),
     "server.jwt.secret_env: only for HS256 (RS256 takes public_key_file)"},
    {rs({{"public_key_file", dir / "absent.pem"}}),
     "server.jwt.public_key_file: cannot read '" + dir / "absent.pem" + "'"},
    {rs({{"public_key_file", priv}}),
     "server.jwt.public_key_file: '" + priv
       + "' holds no PEM public key (-----BEGIN PUBLIC KEY-----)"},
    {rs({{"public_key_file", small}}),
     "server.jwt.public_key_file: '" + small
       + "' has fewer than 2048 bits"},
  };
  for (const auto& [server, message] : forms) {
    auto msg = config_error(server);
    EXPECT_EQ(msg, message) << server.dump();
    EXPECT_EQ(msg.find("short-secret"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(hs_secret), std::string::npos) << msg;
    EXPECT_EQ(msg.find("PRIVATE KEY-----\n"), std::string::npos) << msg;
  }
  unsetenv("CADRE_TEST_AUTH_SHORT");
  // What the defaults are when the keys are absent.
  auto opts = parse_auth_options(hs_config(), nullptr);
  ASSERT_TRUE(opts) << describe(opts.error());
  ASSERT_TRUE(opts->jwt);
  EXPECT_EQ(opts->jwt->algorithm, jwt_algorithm::hs256);
  EXPECT_EQ(opts->jwt->key, hs_secret);
  EXPECT_EQ(opts->jwt->scopes_claim, "scope");
  EXPECT_EQ(opts->jwt->leeway, 30s);
  EXPECT_FALSE(opts->jwt->issuer);
  EXPECT_FALSE(opts->jwt->audience);
}

TEST_F(Auth, AuthenticateRejectsMissingAndMalformedHeaders) {
  auto auth = make_auth(json::object(), "tok");
  const std::pair<const char*, const char*> headers[] = {
    {"", "missing Authorization header"},
    {"   ", "missing Authorization header"},
    {"Basic dG9rOg==", "Authorization scheme is not Bearer"},
    {"Bearertok", "Authorization scheme is not Bearer"},
    {"Bearer", "bearer token is empty"},
    {"Bearer   ", "bearer token is empty"},
    {"Bearer tok tok", "bearer token is malformed"},
    {"Bearer tok2", "token unknown"},
  };
  for (const auto& [header, message] : headers) {
    auto who = auth.authenticate(header, t0);
    ASSERT_FALSE(who) << header;
    EXPECT_EQ(code_of(who.error()), errc::unauthorized);
    EXPECT_EQ(message_of(who.error()), message) << header;
  }
  auto huge = auth.authenticate("Bearer " + std::string(8193, 'x'), t0);
  ASSERT_FALSE(huge);
  EXPECT_EQ(message_of(huge.error()),
            "bearer token is longer than 8192 bytes");
}

TEST_F(Auth, WithoutCredentialsNothingAuthenticates) {
  auto auth = make_auth(json{{"listen", "127.0.0.1:8700"}});
  EXPECT_FALSE(auth.enabled());
  auto who = auth.authenticate("Bearer anything", t0);
  ASSERT_FALSE(who);
  EXPECT_EQ(code_of(who.error()), errc::unauthorized);
  EXPECT_EQ(message_of(who.error()), "no tokens are configured");
}

TEST_F(Auth, AuthorizeNamesTheScopeNeeded) {
  principal reader{"ci", scope::read, credential::token};
  EXPECT_TRUE(authenticator::authorize(reader, scope::none));
  EXPECT_TRUE(authenticator::authorize(reader, scope::read));
  auto denied = authenticator::authorize(reader, scope::write);
  ASSERT_FALSE(denied);
  EXPECT_EQ(code_of(denied.error()), errc::forbidden);
  EXPECT_EQ(message_of(denied.error()), "token 'ci' lacks scope 'write'");
  principal ada{"ada", scope::write, credential::jwt};
  auto no_admin = authenticator::authorize(ada, scope::admin);
  ASSERT_FALSE(no_admin);
  EXPECT_EQ(message_of(no_admin.error()),
            "JWT subject 'ada' lacks scope 'admin'");
  principal root{"root", scope::admin, credential::token};
  for (auto s : {scope::none, scope::read, scope::write, scope::admin})
    EXPECT_TRUE(authenticator::authorize(root, s));
}

TEST_F(Auth, Hs256TokenWithScopesAsString) {
  auto auth = make_auth(hs_config());
  auto who = auth.authenticate("Bearer " + hs256(good_claims()), t0);
  ASSERT_TRUE(who) << describe(who.error());
  EXPECT_EQ(who->name, "ada");
  EXPECT_EQ(who->granted, scope::write);
  EXPECT_EQ(who->kind, credential::jwt);
  // Scopes of other services are ignored, as is a repeated space.
  auto claims = good_claims();
  claims["scope"] = "openid  read profile";
  auto reader = auth.authenticate("Bearer " + hs256(claims), t0);
  ASSERT_TRUE(reader) << describe(reader.error());
  EXPECT_EQ(reader->granted, scope::read);
  // Only other scopes: authenticated, but allowed nothing but the probes.
  claims["scope"] = "openid profile";
  auto nobody = auth.authenticate("Bearer " + hs256(claims), t0);
  ASSERT_TRUE(nobody) << describe(nobody.error());
  EXPECT_EQ(nobody->granted, scope::none);
  EXPECT_FALSE(authenticator::authorize(*nobody, scope::read));
}

TEST_F(Auth, Hs256TokenWithScopesAsArray) {
  auto auth = make_auth(hs_config());
  auto claims = good_claims();
  claims["scope"] = {"read", "admin"};
  auto who = auth.authenticate("Bearer " + hs256(claims), t0);
  ASSERT_TRUE(who) << describe(who.error());
  EXPECT_EQ(who->granted, scope::admin);
  claims["scope"] = {"read", 7};
  EXPECT_EQ(rejected(auth, hs256(claims)),
            "JWT claim 'scope' is not a string or a list of strings");
  claims["scope"] = {{"read", true}};
  EXPECT_EQ(rejected(auth, hs256(claims)),
            "JWT claim 'scope' is not a string or a list of strings");
}

TEST_F(Auth, Hs256TokenWithAnotherScopesClaim) {
  auto auth = make_auth(hs_config({{"scopes_claim", "permissions"}}));
  auto claims = good_claims();
  EXPECT_EQ(rejected(auth, hs256(claims)),
            "JWT lacks claim 'permissions'");
  claims["permissions"] = {"write"};
  auto who = auth.authenticate("Bearer " + hs256(claims), t0);
  ASSERT_TRUE(who) << describe(who.error());
  EXPECT_EQ(who->granted, scope::write);
}

TEST_F(Auth, Hs256TokenLackingClaims) {
  auto auth = make_auth(hs_config());
  for (const char* claim : {"scope", "exp", "sub"}) {
    auto claims = good_claims();
    claims.erase(claim);
    EXPECT_EQ(rejected(auth, hs256(claims)),
              std::string{"JWT lacks claim '"} + claim + "'");
  }
  auto claims = good_claims();
  claims["sub"] = "";
  EXPECT_EQ(rejected(auth, hs256(claims)), "JWT lacks claim 'sub'");
  claims = good_claims();
  claims["exp"] = "tomorrow";
  EXPECT_EQ(rejected(auth, hs256(claims)), "JWT claim 'exp' is not a number");
}

TEST_F(Auth, Hs256TokenExpiryAndNotBeforeWithLeeway) {
  auto auth = make_auth(hs_config());
  auto at = [&](json patch) {
    auto claims = good_claims();
    claims.update(patch);
    return hs256(claims);
  };
  // Expired 10 s ago: inside the default leeway of 30 s.
  EXPECT_TRUE(auth.authenticate("Bearer " + at({{"exp", t0_s - 10}}), t0));
  EXPECT_EQ(rejected(auth, at({{"exp", t0_s - 30}})), "JWT expired");
  EXPECT_EQ(rejected(auth, at({{"exp", t0_s - 3600}})), "JWT expired");
  EXPECT_TRUE(auth.authenticate("Bearer " + at({{"nbf", t0_s + 20}}), t0));
  EXPECT_EQ(rejected(auth, at({{"nbf", t0_s + 31}})),
            "JWT not valid yet (nbf)");
  EXPECT_EQ(rejected(auth, at({{"nbf", "soon"}})),
            "JWT claim 'nbf' is not a number");
  // Without leeway the same tokens are judged to the second.
  auto strict = make_auth(hs_config({{"leeway_s", 0}}));
  EXPECT_EQ(rejected(strict, at({{"exp", t0_s - 10}})), "JWT expired");
  EXPECT_EQ(rejected(strict, at({{"exp", t0_s}})), "JWT expired");
  EXPECT_TRUE(strict.authenticate("Bearer " + at({{"exp", t0_s + 1}}), t0));
  EXPECT_EQ(rejected(strict, at({{"nbf", t0_s + 1}})),
            "JWT not valid yet (nbf)");
}

TEST_F(Auth, Hs256TokenWithWrongSecretOrTamperedClaims) {
  auto auth = make_auth(hs_config());
  EXPECT_EQ(rejected(auth, hs256(good_claims(),
                                 "another-secret-of-32-bytes-or-more!!")),
            "JWT signature invalid");
  // The claims of a valid token swapped for more generous ones.
  auto token = hs256(good_claims());
  auto dot1 = token.find('.');
  auto dot2 = token.find('.', dot1 + 1);
  auto claims = good_claims();
  claims["scope"] = "admin";
  auto forged = token.substr(0, dot1 + 1) + base64url(claims.dump())
                + token.substr(dot2);
  EXPECT_EQ(rejected(auth, forged), "JWT signature invalid");
  EXPECT_EQ(rejected(auth, token.substr(0, dot2 + 1)),
            "JWT signature invalid");
  EXPECT_EQ(rejected(auth, "not.a.jwt"),
            "JWT malformed: header is not a JSON object");
}

TEST_F(Auth, AlgNoneIsRefused) {
  auto auth = make_auth(hs_config());
  // libjwt's own unsigned token: "HEADER.PAYLOAD." with alg "none".
  auto unsigned_token = sign(good_claims(), JWT_ALG_NONE, {});
  ASSERT_EQ(unsigned_token.back(), '.');
  EXPECT_EQ(rejected(auth, unsigned_token),
            "JWT algorithm 'none' is not accepted");
  // The same with a signature attached, and with the name in capitals.
  auto payload = base64url(good_claims().dump());
  auto hs = hs256(good_claims());
  auto sig = hs.substr(hs.rfind('.') + 1);
  for (const char* alg : {"none", "NONE", "None"}) {
    auto header = base64url(json{{"alg", alg}, {"typ", "JWT"}}.dump());
    EXPECT_EQ(rejected(auth, header + "." + payload + "." + sig),
              "JWT algorithm 'none' is not accepted");
  }
}

TEST_F(Auth, JwtHeaderMustNameTheConfiguredAlgorithm) {
  auto auth = make_auth(hs_config());
  EXPECT_EQ(rejected(auth, sign(good_claims(), JWT_ALG_HS512, hs_secret)),
            "JWT algorithm 'HS512' is not the configured HS256");
  EXPECT_EQ(rejected(auth, sign(good_claims(), JWT_ALG_RS256,
                                rsa_key().private_pem)),
            "JWT algorithm 'RS256' is not the configured HS256");
  auto payload = base64url(good_claims().dump());
  auto header = [](const json& h) { return base64url(h.dump()); };
  EXPECT_EQ(rejected(auth, header({{"typ", "JWT"}}) + "." + payload + ".x"),
            "JWT header lacks 'alg'");
  EXPECT_EQ(rejected(auth, header({{"alg", "HS256"}, {"crit", {"exp"}}})
                             + "." + payload + ".x"),
            "JWT header 'crit' is not supported");
  EXPECT_EQ(rejected(auth, header({{"alg", "HS256"}, {"typ", "JWE"}}) + "."
                             + payload + ".x"),
            "JWT header 'typ' is not JWT");
  // An algorithm name not worth repeating is not repeated.
  EXPECT_EQ(rejected(auth, header({{"alg", "HS256 <script>"}}) + "."
                             + payload + ".x"),
            "JWT algorithm is not the configured HS256");
}

TEST_F(Auth, JwtIssuerAndAudience) {
  auto auth = make_auth(
    hs_config({{"issuer", "https://idp.example"}, {"audience", "cadre"}}));
  auto with = [&](json patch) {
    auto claims = good_claims();
    claims.update(patch);
    return hs256(claims);
  };
  auto ok = auth.authenticate(
    "Bearer " + with({{"iss", "https://idp.example"}, {"aud", "cadre"}}), t0);
  EXPECT_TRUE(ok) << describe(ok.error());
  auto in_list = auth.authenticate(
    "Bearer "
      + with({{"iss", "https://idp.example"}, {"aud", {"other", "cadre"}}}),
    t0);
  EXPECT_TRUE(in_list) << describe(in_list.error());
  EXPECT_EQ(rejected(auth, with({{"iss", "https://evil.example"},
                                 {"aud", "cadre"}})),
            "JWT issuer does not match");
  EXPECT_EQ(rejected(auth, with({{"aud", "cadre"}})),
            "JWT lacks claim 'iss'");
  EXPECT_EQ(rejected(auth, with({{"iss", "https://idp.example"},
                                 {"aud", "other"}})),
            "JWT audience does not match");
  EXPECT_EQ(rejected(auth, with({{"iss", "https://idp.example"},
                                 {"aud", {"other", "more"}}})),
            "JWT audience does not match");
  EXPECT_EQ(rejected(auth, with({{"iss", "https://idp.example"}})),
            "JWT lacks claim 'aud'");
}

TEST_F(Auth, Rs256TokenWithGeneratedKeyPair) {
  test::temp_dir dir;
  auto pub = dir / "jwt.pem";
  write_file(pub, rsa_key().public_pem);
  auto auth = make_auth(
    json{{"jwt", {{"algorithm", "RS256"}, {"public_key_file", pub}}}});
  auto token = sign(good_claims(), JWT_ALG_RS256, rsa_key().private_pem);
  auto who = auth.authenticate("Bearer " + token, t0);
  ASSERT_TRUE(who) << describe(who.error());
  EXPECT_EQ(who->name, "ada");
  EXPECT_EQ(who->granted, scope::write);
  EXPECT_EQ(rejected(auth, sign(good_claims(), JWT_ALG_RS256,
                                other_rsa_key().private_pem)),
            "JWT signature invalid");
  auto claims = good_claims();
  claims["exp"] = t0_s - 60;
  EXPECT_EQ(rejected(auth, sign(claims, JWT_ALG_RS256,
                                rsa_key().private_pem)),
            "JWT expired");
  // The public key is no secret: an HS256 token "signed" with it must not
  // pass for one the private key signed.
  EXPECT_EQ(rejected(auth, sign(good_claims(), JWT_ALG_HS256,
                                rsa_key().public_pem)),
            "JWT algorithm 'HS256' is not the configured RS256");
}

TEST_F(Auth, TokensAndJwtTogether) {
  auto server = hs_config();
  server["tokens"] = {{{"name", "ci"},
                       {"sha256", sha256_hex("ci-token")},
                       {"scopes", {"read"}}}};
  auto auth = make_auth(server, "env-token:admin");
  auto ci = auth.authenticate("Bearer ci-token", t0);
  ASSERT_TRUE(ci);
  EXPECT_EQ(ci->name, "ci");
  auto env = auth.authenticate("Bearer env-token", t0);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->granted, scope::admin);
  auto jwt = auth.authenticate("Bearer " + hs256(good_claims()), t0);
  ASSERT_TRUE(jwt);
  EXPECT_EQ(jwt->kind, credential::jwt);
  EXPECT_EQ(rejected(auth, "ci-token-2"), "token unknown");
  // Without a JWT configured, a JWT is just an unknown token.
  auto tokens_only = make_auth(json::object(), "env-token");
  EXPECT_EQ(rejected(tokens_only, hs256(good_claims())), "token unknown");
}
