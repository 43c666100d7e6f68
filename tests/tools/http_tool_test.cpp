#include <atomic>
#include <string>

#include <gtest/gtest.h>

#include "cadre/lang/secrets.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "loopback_server.hpp"
#include "tool_schema_check.hpp"

using namespace cadre;
using namespace cadre::tools;
using namespace std::chrono_literals;
using cadre::test::loopback_server;

namespace {

/// Settings for tests against the loopback server: loopback allowed, short
/// limits, retries without real waiting.
json local_settings(json extra = json::object()) {
  json s{{"allow_private", true},
         {"timeout_ms", 5000},
         {"connect_timeout_ms", 2000},
         {"retry_base_ms", 1},
         {"retry_max_ms", 2000}};
  s.update(extra);
  return s;
}

std::unique_ptr<tool> make_http(json settings = local_settings()) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("http", json_value{std::move(settings)});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

expected<json_value> call(tool& t, json input, tool_context ctx = {}) {
  return t.invoke(json_value{std::move(input)}, ctx);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST(HttpTool, DescribesItselfForModels) {
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  EXPECT_TRUE(http->blocking());
  auto d = http->describe();
  EXPECT_EQ(d.name, "http");
  EXPECT_EQ(d.input_schema["required"], json::array({"url"}));
  EXPECT_EQ(d.input_schema["properties"]["timeout_ms"]["maximum"], 5000);
  EXPECT_TRUE(d.output_schema["properties"].contains("status"));
}

TEST(HttpTool, JsonResponseIsParsed) {
  loopback_server srv;
  srv.server().Get("/data", [](const httplib::Request&,
                               httplib::Response& res) {
    res.set_header("X-Request-Id", "r1");
    res.set_content(R"({"items":[1,2],"ok":true})",
                    "application/json; charset=utf-8");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/data")}});
  ASSERT_TRUE(out) << describe(out.error());
  const auto& o = out->get();
  EXPECT_EQ(o["status"], 200);
  EXPECT_EQ(o["body"], (json{{"items", {1, 2}}, {"ok", true}}));
  EXPECT_EQ(o["headers"]["x-request-id"], "r1");
  EXPECT_EQ(o["headers"]["content-type"], "application/json; charset=utf-8");
  EXPECT_EQ(o["url"], srv.url("/data"));
  EXPECT_EQ(o["attempts"], 1);
}

TEST(HttpTool, TextAndBinaryResponses) {
  loopback_server srv;
  srv.server().Get("/text", [](const httplib::Request&,
                               httplib::Response& res) {
    res.set_content("plain words", "text/plain");
  });
  srv.server().Get("/broken-json", [](const httplib::Request&,
                                      httplib::Response& res) {
    res.set_content("{not json", "application/json");
  });
  srv.server().Get("/binary", [](const httplib::Request&,
                                 httplib::Response& res) {
    res.set_content(std::string{"\xff\xfe\x00\x01", 4},
                    "application/octet-stream");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto text = call(*http, {{"url", srv.url("/text")}});
  ASSERT_TRUE(text) << describe(text.error());
  EXPECT_EQ(text->get()["body"], "plain words");
  auto broken = call(*http, {{"url", srv.url("/broken-json")}});
  ASSERT_TRUE(broken) << describe(broken.error());
  EXPECT_EQ(broken->get()["body"], "{not json");
  auto binary = call(*http, {{"url", srv.url("/binary")}});
  ASSERT_TRUE(binary) << describe(binary.error());
  EXPECT_TRUE(binary->get()["body"].is_null());
  EXPECT_EQ(binary->get()["body_base64"], "//4AAQ==");
  // The output must survive serialization (the event log stores it).
  EXPECT_NO_THROW((void) binary->dump());
}

TEST(HttpTool, SendsJsonAndTextBodiesWithTheirContentType) {
  loopback_server srv;
  srv.server().Post("/echo", [](const httplib::Request& req,
                                httplib::Response& res) {
    res.set_content(json{{"content_type", req.get_header_value("Content-Type")},
                         {"body", req.body},
                         {"method", req.method}}
                      .dump(),
                    "application/json");
  });
  srv.server().Put("/echo", [](const httplib::Request& req,
                               httplib::Response& res) {
    res.set_content(json{{"content_type", req.get_header_value("Content-Type")},
                         {"body", req.body},
                         {"method", req.method}}
                      .dump(),
                    "application/json");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto j = call(*http, {{"url", srv.url("/echo")},
                        {"method", "post"},
                        {"json", {{"name", "cadre"}, {"n", 1}}}});
  ASSERT_TRUE(j) << describe(j.error());
  EXPECT_EQ(j->get()["body"]["content_type"], "application/json");
  EXPECT_EQ(json::parse(j->get()["body"]["body"].get<std::string>()),
            (json{{"name", "cadre"}, {"n", 1}}));
  EXPECT_EQ(j->get()["body"]["method"], "POST");
  auto t = call(*http, {{"url", srv.url("/echo")},
                        {"method", "PUT"},
                        {"body", "hello"}});
  ASSERT_TRUE(t) << describe(t.error());
  EXPECT_EQ(t->get()["body"]["content_type"], "text/plain; charset=utf-8");
  EXPECT_EQ(t->get()["body"]["body"], "hello");
  EXPECT_EQ(t->get()["body"]["method"], "PUT");
  auto own = call(*http, {{"url", srv.url("/echo")},
                          {"method", "POST"},
                          {"headers", {{"Content-Type", "text/csv"}}},
                          {"body", "a,b"}});
  ASSERT_TRUE(own) << describe(own.error());
  EXPECT_EQ(own->get()["body"]["content_type"], "text/csv");
}

TEST(HttpTool, QueryIsUrlEncoded) {
  loopback_server srv;
  srv.server().Get("/search", [](const httplib::Request& req,
                                 httplib::Response& res) {
    json params = json::object();
    for (const auto& [k, v] : req.params)
      params[k].push_back(v);
    res.set_content(json{{"target", req.target}, {"params", params}}.dump(),
                    "application/json");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/search?fixed=1")},
                          {"query",
                           {{"q", "a b&c=d/é"},
                            {"n", 3},
                            {"flag", true},
                            {"tag", {"x", "y"}},
                            {"skip", nullptr}}}});
  ASSERT_TRUE(out) << describe(out.error());
  const auto& body = out->get()["body"];
  EXPECT_EQ(body["target"],
            "/search?fixed=1&flag=true&n=3&q=a%20b%26c%3Dd%2F%C3%A9&tag=x&tag=y");
  EXPECT_EQ(body["params"]["q"], json::array({"a b&c=d/é"}));
  EXPECT_EQ(body["params"]["tag"], json::array({"x", "y"}));
  EXPECT_FALSE(body["params"].contains("skip"));
}

TEST(HttpTool, SendsTheIdempotencyKey) {
  loopback_server srv;
  srv.server().Post("/charge", [](const httplib::Request& req,
                                  httplib::Response& res) {
    res.set_content(req.get_header_value("Idempotency-Key"), "text/plain");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  tool_context ctx;
  ctx.idempotency_key = "exec-1/charge/2";
  auto out = call(*http,
                  {{"url", srv.url("/charge")},
                   {"method", "POST"},
                   {"json", {{"amount", 5}}}},
                  ctx);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get()["body"], "exec-1/charge/2");
}

TEST(HttpTool, PrivateAddressesAreRefusedByDefault) {
  loopback_server srv;
  srv.server().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("reached", "text/plain");
  });
  srv.start();
  auto http = make_http(json::object());
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/")}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::invalid_input);
  auto msg = message_of(out.error());
  EXPECT_TRUE(contains(msg, "tool http: GET " + srv.url("/"))) << msg;
  EXPECT_TRUE(contains(msg, "127.0.0.1 is a loopback address")) << msg;
  EXPECT_TRUE(contains(msg, "tools.http.allow_private")) << msg;
  EXPECT_EQ(srv.hits(), 0);
  // An allowlist that names the host does not lift the address check.
  auto listed = make_http(json{{"allowed_hosts", {"127.0.0.1"}}});
  ASSERT_NE(listed, nullptr);
  auto again = call(*listed, {{"url", srv.url("/")}});
  ASSERT_FALSE(again);
  EXPECT_EQ(srv.hits(), 0);
}

TEST(HttpTool, AllowedHostsRestrictDestinations) {
  loopback_server srv;
  srv.server().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("reached", "text/plain");
  });
  srv.start();
  auto http = make_http(local_settings({{"allowed_hosts", {"localhost"}}}));
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/")}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::invalid_input);
  EXPECT_TRUE(contains(message_of(out.error()),
                       "host '127.0.0.1' is not in the allowed hosts"))
    << message_of(out.error());
  auto ok = call(*http, {{"url", "http://localhost:" + std::to_string(srv.port())
                                   + "/"}});
  ASSERT_TRUE(ok) << describe(ok.error());
  EXPECT_EQ(ok->get()["body"], "reached");
}

TEST(HttpTool, SlowServerTimesOut) {
  loopback_server srv;
  srv.server().Get("/slow", [&srv](const httplib::Request&,
                                   httplib::Response& res) {
    srv.wait_for_stop(30s);
    res.set_content("late", "text/plain");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/slow")}, {"timeout_ms", 200}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::timeout);
  EXPECT_TRUE(contains(message_of(out.error()), "tool http: "))
    << message_of(out.error());
  EXPECT_EQ(srv.hits(), 1) << "a timeout is not retried";
}

TEST(HttpTool, CancelStopsTheCall) {
  tool_context ctx;
  loopback_server srv;
  srv.server().Get("/hang", [&srv, flag = ctx.cancel_flag](
                              const httplib::Request&, httplib::Response& res) {
    flag->store(true);
    srv.wait_for_stop(30s);
    res.set_content("late", "text/plain");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/hang")}}, ctx);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::cancelled);
}

TEST(HttpTool, ServerErrorThenSuccessIsRetried) {
  loopback_server srv;
  std::atomic<int> calls{0};
  srv.server().Get("/flaky", [&](const httplib::Request&,
                                 httplib::Response& res) {
    if (++calls == 1)
      res.status = 500;
    else
      res.set_content("fine", "text/plain");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/flaky")}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get()["status"], 200);
  EXPECT_EQ(out->get()["body"], "fine");
  EXPECT_EQ(out->get()["attempts"], 2);
}

TEST(HttpTool, ServiceUnavailableWithRetryAfterIsRetried) {
  loopback_server srv;
  std::atomic<int> calls{0};
  srv.server().Get("/busy", [&](const httplib::Request&,
                                httplib::Response& res) {
    if (++calls == 1) {
      res.status = 503;
      res.set_header("Retry-After", "1");
    } else {
      res.set_content("served", "text/plain");
    }
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/busy")}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get()["body"], "served");
  EXPECT_EQ(out->get()["attempts"], 2);
}

TEST(HttpTool, TooManyRequestsAfterRetriesIsOutput) {
  loopback_server srv;
  srv.server().Get("/limited", [](const httplib::Request&,
                                  httplib::Response& res) {
    res.status = 429;
    res.set_header("Retry-After", "0");
    res.set_content(R"({"error":"slow down"})", "application/json");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/limited")}, {"max_attempts", 2}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get()["status"], 429);
  EXPECT_EQ(out->get()["attempts"], 2);
  EXPECT_EQ(out->get()["body"]["error"], "slow down");
  EXPECT_EQ(srv.hits(), 2);
}

TEST(HttpTool, FailOnStatusDecidesWhatIsAnError) {
  loopback_server srv;
  srv.server().Get("/down", [](const httplib::Request&,
                               httplib::Response& res) {
    res.status = 500;
    res.set_content("database unreachable", "text/plain");
  });
  srv.server().Get("/missing", [](const httplib::Request&,
                                  httplib::Response& res) {
    res.status = 404;
    res.set_content("no such item", "text/plain");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  // Default server_errors: a persistent 5xx is an error, a 4xx is output.
  auto down = call(*http, {{"url", srv.url("/down")}});
  ASSERT_FALSE(down);
  EXPECT_EQ(code_of(down.error()), errc::unavailable);
  EXPECT_EQ(message_of(down.error()),
            "tool http: GET " + srv.url("/down")
              + ": status 500 after 3 attempts: database unreachable");
  auto missing = call(*http, {{"url", srv.url("/missing")}});
  ASSERT_TRUE(missing) << describe(missing.error());
  EXPECT_EQ(missing->get()["status"], 404);
  EXPECT_EQ(missing->get()["body"], "no such item");
  // all_errors: a 4xx is an error too; never: a 5xx is output.
  auto strict = call(*http, {{"url", srv.url("/missing")},
                             {"fail_on_status", "all_errors"}});
  ASSERT_FALSE(strict);
  EXPECT_EQ(code_of(strict.error()), errc::tool_failed);
  auto lenient = call(*http, {{"url", srv.url("/down")},
                              {"fail_on_status", "never"},
                              {"max_attempts", 1}});
  ASSERT_TRUE(lenient) << describe(lenient.error());
  EXPECT_EQ(lenient->get()["status"], 500);
}

TEST(HttpTool, RedirectsWithinAndPastTheLimit) {
  loopback_server srv;
  srv.server().Get(R"(/r/(\d+))", [](const httplib::Request& req,
                                     httplib::Response& res) {
    int n = std::stoi(req.matches[1]);
    if (n == 0)
      res.set_content("arrived", "text/plain");
    else
      res.set_redirect("/r/" + std::to_string(n - 1), 301);
  });
  srv.server().Get("/metadata", [](const httplib::Request&,
                                   httplib::Response& res) {
    res.set_redirect("http://169.254.169.254/latest/meta-data/", 302);
  });
  srv.start();
  auto http = make_http(local_settings({{"max_redirects", 3}}));
  ASSERT_NE(http, nullptr);
  auto within = call(*http, {{"url", srv.url("/r/3")}});
  ASSERT_TRUE(within) << describe(within.error());
  EXPECT_EQ(within->get()["body"], "arrived");
  EXPECT_EQ(within->get()["redirects"], 3);
  EXPECT_EQ(within->get()["url"], srv.url("/r/0"));
  auto past = call(*http, {{"url", srv.url("/r/3")}, {"max_redirects", 2}});
  ASSERT_FALSE(past);
  EXPECT_EQ(code_of(past.error()), errc::tool_failed);
  EXPECT_TRUE(contains(message_of(past.error()), "more than 2 redirects"))
    << message_of(past.error());
  auto none = call(*http, {{"url", srv.url("/r/1")}, {"max_redirects", 0}});
  ASSERT_TRUE(none) << describe(none.error());
  EXPECT_EQ(none->get()["status"], 301);
  EXPECT_EQ(none->get()["headers"]["location"], "/r/0");
  auto blocked = call(*http, {{"url", srv.url("/metadata")}});
  ASSERT_FALSE(blocked);
  EXPECT_EQ(code_of(blocked.error()), errc::invalid_input);
  EXPECT_TRUE(contains(message_of(blocked.error()),
                       "169.254.169.254 is a link-local address, which the "
                       "policy refuses (allowed by "
                       "tools.http.allow_link_local)"))
    << message_of(blocked.error());
}

TEST(HttpTool, OversizedResponseIsCutWithAClearError) {
  loopback_server srv;
  srv.server().Get("/big", [](const httplib::Request&,
                              httplib::Response& res) {
    res.set_content(std::string(64 * 1024, 'x'), "text/plain");
  });
  srv.start();
  auto http = make_http(local_settings({{"max_response_bytes", 4096}}));
  ASSERT_NE(http, nullptr);
  auto out = call(*http, {{"url", srv.url("/big")}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::tool_failed);
  EXPECT_EQ(message_of(out.error()),
            "tool http: GET " + srv.url("/big")
              + ": response body exceeds the limit of 4096 bytes");
  auto lower = call(*http, {{"url", srv.url("/big")},
                            {"max_response_bytes", 100}});
  ASSERT_FALSE(lower);
  EXPECT_TRUE(contains(message_of(lower.error()), "limit of 100 bytes"));
}

// Issue 13 item 7: the shape, the limits (the settings are the ceilings)
// and which keys go together are the published schema's to check (errors
// located by it); where a credential came from stays the tool's.
TEST(HttpTool, BadInputIsRefusedByTheSchemaNamingThePointer) {
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  const std::string u = "http://x.test/";
  test::expect_refused_by_schema(*http, {
    {json::array(), "/"},
    {json::object(), "/"},
    {{{"url", 5}}, "/url"},
    {{{"url", ""}}, "/url"},
    {{{"url", u}, {"verb", "GET"}}, "/"},
    {{{"url", u}, {"method", "FETCH"}}, "/method"},
    {{{"url", u}, {"headers", {{"X-N", 1}}}}, "/headers/X-N"},
    {{{"url", u}, {"headers", {{"X-A", "1\r\nX-B: 2"}}}}, "/headers/X-A"},
    {{{"url", u}, {"headers", {{"Bad Name", "1"}}}}, "/headers"},
    {{{"url", u}, {"query", {{"a", {{"b", 1}}}}}}, "/query/a"},
    {{{"url", u}, {"query", {{"a", {1, {2}}}}}}, "/query/a/1"},
    {{{"url", u}, {"method", "POST"}, {"json", 1}, {"body", "x"}}, "/"},
    {{{"url", u}, {"method", "POST"}, {"body", 1}}, "/body"},
    {{{"url", u}, {"json", {{"a", 1}}}}, "/"},
    {{{"url", u}, {"method", "head"}, {"body", "x"}}, "/"},
    {{{"url", u}, {"timeout_ms", 60000}}, "/timeout_ms"},
    {{{"url", u}, {"max_attempts", 0}}, "/max_attempts"},
    {{{"url", u}, {"fail_on_status", true}}, "/fail_on_status"},
    {{{"url", u}, {"auth", {{"type", "magic"}}}}, "/auth/type"},
    {{{"url", u}, {"auth", {{"type", "bearer"}}}}, "/auth"},
    {{{"url", u}, {"auth", {{"type", "bearer"}, {"token", "t"}, {"x", 1}}}},
     "/auth"},
    {{{"url", u}, {"auth", {{"type", "header"}, {"name", "A B"},
                            {"value", "v"}}}},
     "/auth/name"},
  });
  // Accepted inputs get as far as the address policy (x.test is not
  // resolvable), never an input error.
  test::expect_accepted_by_both(*http, {
    {{"url", "http://127.0.0.1:1/"}, {"method", "post"}, {"json", {1}},
     {"timeout_ms", 50.0}, {"max_attempts", 1}},
  });
  auto scheme = call(*http, {{"url", "file:///etc/passwd"}});
  ASSERT_FALSE(scheme);
  EXPECT_EQ(code_of(scheme.error()), errc::invalid_input);
  EXPECT_TRUE(contains(message_of(scheme.error()), "scheme 'file'"))
    << message_of(scheme.error());
}

TEST(HttpTool, BadSettingsNameTheKey) {
  tool_registry registry;
  register_builtin_tools(registry);
  struct bad_case {
    json settings;
    std::string message;
  };
  const bad_case cases[] = {
    {json{{"allow_private", "yes"}},
     "tools.http.allow_private: must be true or false"},
    {json{{"allowed_hosts", "a.test"}},
     "tools.http.allowed_hosts: must be an array of strings"},
    {json{{"timeout_ms", 0}},
     "tools.http.timeout_ms: must be an integer in [1, 86400000]"},
    {json{{"max_attempts", 50}},
     "tools.http.max_attempts: must be an integer in [1, 20]"},
    {json{{"fail_on_status", "sometimes"}},
     "tools.http.fail_on_status: must be one of never, server_errors, "
     "all_errors"},
  };
  for (const auto& c : cases) {
    auto t = registry.create("http", json_value{c.settings});
    ASSERT_FALSE(t) << c.settings.dump();
    EXPECT_EQ(code_of(t.error()), errc::invalid_config);
    EXPECT_EQ(message_of(t.error()), c.message);
  }
  auto typo = registry.create("http", json_value{json{{"allow_privat", true}}});
  ASSERT_FALSE(typo);
  EXPECT_TRUE(contains(message_of(typo.error()),
                       "tools.http.allow_privat: unknown setting"))
    << message_of(typo.error());
}

// Issue 12: credentials come from named secrets. The worker fills in the
// references (secret_store::resolve at the workflow's pointers); `auth`
// builds the header, and refuses a credential that did not come from one.
TEST(HttpTool, AuthTakesItsCredentialFromASecret) {
  loopback_server srv;
  std::string seen;
  srv.server().Get("/who", [&](const httplib::Request& req,
                               httplib::Response& res) {
    seen = req.get_header_value("Authorization");
    res.set_content("ok", "text/plain");
  });
  srv.start();
  auto http = make_http();
  ASSERT_NE(http, nullptr);
  auto secrets = std::make_shared<secret_store>();
  secrets->add("pw", "s3cret-pw");
  const std::vector<std::string> pointers{"/auth/password"};
  json input{{"url", srv.url("/who")},
             {"auth",
              {{"type", "basic"},
               {"username", "ci"},
               {"password", "{{ secrets.pw }}"}}}};
  auto filled = secrets->resolve(json_value{input}, pointers);
  ASSERT_TRUE(filled) << describe(filled.error());
  tool_context ctx;
  ctx.secrets = secrets;
  ctx.secret_pointers = pointers;
  auto out = http->invoke(*filled, ctx);
  ASSERT_TRUE(out) << describe(out.error());
  // base64("ci:s3cret-pw")
  EXPECT_EQ(seen, "Basic Y2k6czNjcmV0LXB3");
  // The same credential written in the input itself would be recorded.
  input["auth"]["password"] = "s3cret-pw";
  auto literal = call(*http, input);
  ASSERT_FALSE(literal);
  EXPECT_TRUE(contains(describe(literal.error()), "/auth/password"))
    << describe(literal.error());
}

TEST(HttpTool, SecretsResolveOnlyWhereTheWorkflowWroteThem) {
  secret_store secrets;
  secrets.add("tok", "abc123");
  json input{{"a", "{{ secrets.tok }}"}, {"b", "{{ secrets.tok }}"}};
  auto filled = secrets.resolve(json_value{input}, {"/a"});
  ASSERT_TRUE(filled) << describe(filled.error());
  EXPECT_EQ((*filled)->at("a"), "abc123");
  EXPECT_EQ((*filled)->at("b"), "{{ secrets.tok }}");
  auto unknown = secrets.resolve(json_value{json{{"a", "{{ secrets.x }}"}}},
                                 {"/a"});
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(contains(describe(unknown.error()), "unknown secret 'x'"));
  EXPECT_EQ(secrets.redact("say abc123!"), "say [redacted]!");
}
