#include "cadre/tools/net/http_client.hpp"

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "loopback_server.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace cadre::tools::net;
using namespace std::chrono_literals;
using cadre::test::loopback_server;

namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// A request to the loopback server with loopback allowed and short limits.
http_request local(const loopback_server& srv, std::string path,
                   std::string method = "GET") {
  http_request req;
  req.method = std::move(method);
  req.url = srv.url(path);
  req.policy.allow_loopback = true;
  req.connect_timeout = 2s;
  req.timeout = 5s;
  return req;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

// -- pure helpers -------------------------------------------------------------

TEST(HttpClient, AddressRefusalFollowsThePolicy) {
  struct row {
    const char* ip;
    bool by_default; // allowed with the default policy
    const char* allowed_by; // "loopback", "private", "link_local", "", "never"
  };
  const row rows[] = {
    {"93.184.216.34", true, ""},
    {"2606:4700::1111", true, ""},
    {"127.0.0.1", false, "loopback"},
    {"127.8.9.10", false, "loopback"},
    {"0.0.0.0", false, "loopback"},
    {"::1", false, "loopback"},
    {"[::1]", false, "loopback"},
    {"::", false, "loopback"},
    {"::ffff:127.0.0.1", false, "loopback"},
    {"10.1.2.3", false, "private"},
    {"172.16.0.1", false, "private"},
    {"172.31.255.255", false, "private"},
    {"172.32.0.1", true, ""},
    {"192.168.1.1", false, "private"},
    {"100.64.0.1", false, "private"},
    {"fd00::1", false, "private"},
    {"::ffff:10.0.0.1", false, "private"},
    {"64:ff9b::a00:1", false, "private"},
    {"169.254.169.254", false, "link_local"},
    {"fe80::1%eth0", false, "link_local"},
    {"224.0.0.1", false, "never"},
    {"255.255.255.255", false, "never"},
    {"ff02::1", false, "never"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.ip);
    EXPECT_EQ(!address_refusal(r.ip, ssrf_policy{}).has_value(), r.by_default);
    std::string by = r.allowed_by;
    if (by.empty())
      continue;
    ssrf_policy all;
    all.allow_loopback = all.allow_private = all.allow_link_local = true;
    EXPECT_EQ(!address_refusal(r.ip, all).has_value(), by != "never");
    ssrf_policy one;
    one.allow_loopback = by == "loopback";
    one.allow_private = by == "private";
    one.allow_link_local = by == "link_local";
    EXPECT_EQ(!address_refusal(r.ip, one).has_value(), by != "never");
  }
  auto why = address_refusal("169.254.169.254", ssrf_policy{});
  ASSERT_TRUE(why);
  EXPECT_TRUE(contains(*why, "169.254.169.254")) << *why;
  EXPECT_TRUE(contains(*why, "link-local")) << *why;
  EXPECT_TRUE(address_refusal("not-an-ip", ssrf_policy{}));
}

TEST(HttpClient, HostAllowedMatchesNamesAndWildcards) {
  std::vector<std::string> allowed = {"api.example.com", "*.hooks.test",
                                      "127.0.0.1", "[::1]"};
  EXPECT_TRUE(host_allowed("api.example.com", allowed));
  EXPECT_TRUE(host_allowed("API.Example.COM.", allowed));
  EXPECT_FALSE(host_allowed("example.com", allowed));
  EXPECT_FALSE(host_allowed("evilapi.example.com", allowed));
  EXPECT_TRUE(host_allowed("a.hooks.test", allowed));
  EXPECT_TRUE(host_allowed("a.b.hooks.test", allowed));
  EXPECT_FALSE(host_allowed("hooks.test", allowed));
  EXPECT_FALSE(host_allowed("xhooks.test", allowed));
  EXPECT_TRUE(host_allowed("127.0.0.1", allowed));
  EXPECT_TRUE(host_allowed("::1", allowed));
  EXPECT_TRUE(host_allowed("[::1]", allowed));
  EXPECT_TRUE(host_allowed("anything", {}));
}

TEST(HttpClient, RedactUrlDropsCredentialsAndQuery) {
  EXPECT_EQ(redact_url("https://user:pw@h.test:8443/a/b?key=secret#x"),
            "https://h.test:8443/a/b");
  EXPECT_EQ(redact_url("http://h.test/?token=1"), "http://h.test/");
  EXPECT_EQ(redact_url("not a url?key=secret"), "not a url");
}

TEST(HttpClient, ParseRetryAfterAcceptsSecondsAndHttpDates) {
  auto now = std::chrono::system_clock::from_time_t(1445412480); // 07:28:00
  EXPECT_EQ(parse_retry_after("120", now), 120'000ms);
  EXPECT_EQ(parse_retry_after(" 0 ", now), 0ms);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), 30'000ms);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), 0ms);
  EXPECT_FALSE(parse_retry_after("soon", now));
  EXPECT_FALSE(parse_retry_after("", now));
  EXPECT_FALSE(parse_retry_after("-5", now));
}

TEST(HttpClient, RetryableStatusesAre429And5xx) {
  for (long s : {429L, 500L, 502L, 503L, 504L, 599L})
    EXPECT_TRUE(retryable_status(s)) << s;
  for (long s : {200L, 301L, 400L, 401L, 404L, 501L, 505L})
    EXPECT_FALSE(retryable_status(s)) << s;
}

TEST(HttpClient, HeadersLookupIgnoresCase) {
  http_headers h;
  h.add("Content-Type", "text/plain");
  h.add("Set-Cookie", "a=1");
  h.add("set-cookie", "b=2");
  ASSERT_NE(h.find("content-type"), nullptr);
  EXPECT_EQ(*h.find("CONTENT-TYPE"), "text/plain");
  EXPECT_EQ(h.joined("Set-Cookie"), "a=1, b=2");
  h.set("SET-COOKIE", "c=3");
  EXPECT_EQ(h.joined("set-cookie"), "c=3");
  h.remove("Content-type");
  EXPECT_EQ(h.find("content-type"), nullptr);
  EXPECT_FALSE(h.joined("x-missing"));
}

// -- exchanges with a loopback server -----------------------------------------

TEST(HttpClient, GetReturnsStatusHeadersAndBody) {
  loopback_server srv;
  srv.server().Get("/hello", [](const httplib::Request&,
                                httplib::Response& res) {
    res.set_header("X-Answer", "42");
    res.set_content(R"({"hello":"world"})", "application/json");
  });
  srv.start();
  http_client client;
  auto resp = client.perform(local(srv, "/hello"));
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, R"({"hello":"world"})");
  ASSERT_NE(resp->headers.find("x-answer"), nullptr);
  EXPECT_EQ(*resp->headers.find("X-ANSWER"), "42");
  EXPECT_EQ(*resp->headers.find("content-type"), "application/json");
  EXPECT_EQ(resp->url, srv.url("/hello"));
  EXPECT_EQ(resp->remote_address, "127.0.0.1");
  EXPECT_EQ(resp->redirects, 0u);
  EXPECT_EQ(resp->attempts, 1u);
}

TEST(HttpClient, SendsMethodHeadersAndBody) {
  loopback_server srv;
  auto echo = [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.method + "|" + req.get_header_value("Content-Type")
                      + "|" + req.get_header_value("X-Token") + "|"
                      + req.body,
                    "text/plain");
  };
  srv.server().Post("/echo", echo);
  srv.server().Put("/echo", echo);
  srv.server().Delete("/echo", echo);
  srv.start();
  http_client client;
  auto req = local(srv, "/echo", "POST");
  req.headers.add("Content-Type", "application/json");
  req.headers.add("X-Token", "t1");
  req.body = R"({"a":1})";
  auto post = client.perform(req);
  ASSERT_TRUE(post) << describe(post.error());
  EXPECT_EQ(post->body, R"(POST|application/json|t1|{"a":1})");
  req.method = "PUT";
  auto put = client.perform(req);
  ASSERT_TRUE(put) << describe(put.error());
  EXPECT_EQ(put->body, R"(PUT|application/json|t1|{"a":1})");
  auto del = client.perform(local(srv, "/echo", "DELETE"));
  ASSERT_TRUE(del) << describe(del.error());
  EXPECT_EQ(del->body, "DELETE|||");
}

TEST(HttpClient, SendsABodyFileAsItIsReadWithItsLength) {
  loopback_server srv;
  srv.server().Post("/echo", [](const httplib::Request& req,
                                httplib::Response& res) {
    res.set_content(req.get_header_value("Content-Length") + "|"
                      + req.get_header_value("Transfer-Encoding") + "|"
                      + req.body,
                    "text/plain");
  });
  srv.server().Post("/temporary", [](const httplib::Request&,
                                     httplib::Response& res) {
    res.set_redirect("/echo", 307);
  });
  srv.start();
  test::temp_dir dir;
  // Over curl's buffer, so it is read in several pieces.
  std::string text;
  for (int i = 0; text.size() < 300'000; ++i)
    text += "{\"line\": " + std::to_string(i) + "}\n";
  auto file = dir.str() + "/body.ndjson";
  std::ofstream{file, std::ios::binary} << text;
  http_client client;
  auto req = local(srv, "/echo", "POST");
  req.headers.add("Content-Type", "application/x-ndjson");
  req.body_file = file;
  auto sent = client.perform(req);
  ASSERT_TRUE(sent) << describe(sent.error());
  EXPECT_EQ(sent->body, std::to_string(text.size()) + "||" + text);
  // A 307 sends it again from its start.
  req.url = srv.url("/temporary");
  auto again = client.perform(req);
  ASSERT_TRUE(again) << describe(again.error());
  EXPECT_EQ(again->redirects, 1u);
  EXPECT_EQ(again->body, std::to_string(text.size()) + "||" + text);
  // A file that is not there is the request's fault, named.
  req.body_file = dir.str() + "/missing.ndjson";
  auto missing = client.perform(req);
  ASSERT_FALSE(missing);
  EXPECT_EQ(code_of(missing.error()), errc::invalid_input);
  EXPECT_TRUE(contains(message_of(missing.error()),
                       "cannot open the body file " + req.body_file))
    << describe(missing.error());
}

TEST(HttpClient, ReusesTheConnectionBetweenCalls) {
  loopback_server srv;
  srv.server().Get("/port", [](const httplib::Request& req,
                               httplib::Response& res) {
    res.set_content(std::to_string(req.remote_port), "text/plain");
  });
  srv.start();
  http_client client;
  auto first = client.perform(local(srv, "/port"));
  auto second = client.perform(local(srv, "/port"));
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body, second->body) << "a new connection was opened";
}

TEST(HttpClient, LoopbackIsRefusedByDefaultBeforeConnecting) {
  loopback_server srv;
  srv.server().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("reached", "text/plain");
  });
  srv.start();
  http_client client;
  auto req = local(srv, "/");
  req.policy = ssrf_policy{};
  req.policy.settings_prefix = "tools.x.";
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::invalid_input);
  auto msg = message_of(resp.error());
  EXPECT_TRUE(contains(msg, "127.0.0.1")) << msg;
  EXPECT_TRUE(contains(msg, "loopback")) << msg;
  EXPECT_TRUE(contains(msg, "(allowed by tools.x.allow_private)")) << msg;
  EXPECT_EQ(srv.hits(), 0);
}

TEST(HttpClient, KeptAliveConnectionIsCheckedAgainUnderAStricterPolicy) {
  loopback_server srv;
  srv.server().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  srv.start();
  http_client client;
  ASSERT_TRUE(client.perform(local(srv, "/")));
  auto strict = local(srv, "/");
  strict.policy.allow_loopback = false;
  auto resp = client.perform(strict);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::invalid_input);
  EXPECT_EQ(srv.hits(), 1);
}

TEST(HttpClient, HostOutsideAllowedHostsIsRefused) {
  loopback_server srv;
  srv.start();
  http_client client;
  auto req = local(srv, "/");
  req.policy.allowed_hosts = {"api.example.com"};
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::invalid_input);
  auto msg = message_of(resp.error());
  EXPECT_TRUE(contains(msg, "host '127.0.0.1' is not in the allowed hosts"))
    << msg;
  EXPECT_EQ(srv.hits(), 0);
}

TEST(HttpClient, SlowServerTimesOut) {
  loopback_server srv;
  srv.server().Get("/slow", [&srv](const httplib::Request&,
                                   httplib::Response& res) {
    srv.wait_for_stop(30s);
    res.set_content("late", "text/plain");
  });
  srv.start();
  http_client client;
  auto req = local(srv, "/slow");
  req.timeout = 200ms;
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::timeout);
  EXPECT_TRUE(contains(message_of(resp.error()), "within 200 ms"))
    << message_of(resp.error());
}

TEST(HttpClient, DeadlineBoundsTheExchange) {
  loopback_server srv;
  srv.server().Get("/slow", [&srv](const httplib::Request&,
                                   httplib::Response& res) {
    srv.wait_for_stop(30s);
    res.set_content("late", "text/plain");
  });
  srv.start();
  http_client client;
  auto req = local(srv, "/slow");
  req.timeout = 60s;
  req.deadline_us = now_us() + 200'000;
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::timeout);
  EXPECT_TRUE(contains(message_of(resp.error()), "deadline"))
    << message_of(resp.error());
  // A deadline already past fails before any connection.
  req.deadline_us = now_us() - 1;
  auto late = client.perform(req);
  ASSERT_FALSE(late);
  EXPECT_EQ(code_of(late.error()), errc::timeout);
}

TEST(HttpClient, CancelFlagStopsARunningTransfer) {
  auto flag = std::make_shared<std::atomic<bool>>(false);
  loopback_server srv;
  // The handler cancels the call that is waiting for it.
  srv.server().Get("/hang", [&srv, flag](const httplib::Request&,
                                         httplib::Response& res) {
    flag->store(true);
    srv.wait_for_stop(30s);
    res.set_content("late", "text/plain");
  });
  srv.start();
  http_client client;
  auto req = local(srv, "/hang");
  req.timeout = 60s;
  req.cancel_flag = flag;
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::cancelled);
}

TEST(HttpClient, ConnectionRefusedIsUnavailable) {
  int port = 0;
  {
    loopback_server gone;
    gone.start();
    port = gone.port();
  }
  http_client client;
  http_request req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  req.policy.allow_loopback = true;
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::unavailable);
  EXPECT_TRUE(contains(message_of(resp.error()), "connection refused"))
    << message_of(resp.error());
  EXPECT_TRUE(retryable_error(resp.error()));
}

TEST(HttpClient, DnsFailureIsUnavailable) {
  http_client client;
  http_request req;
  req.url = "http://no-such-host.invalid/";
  req.connect_timeout = 5s;
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::unavailable)
    << describe(resp.error());
  EXPECT_TRUE(contains(message_of(resp.error()), "DNS"))
    << message_of(resp.error());
}

TEST(HttpClient, OversizedBodyIsAnError) {
  loopback_server srv;
  srv.server().Get("/big", [](const httplib::Request&,
                              httplib::Response& res) {
    res.set_content(std::string(100'000, 'x'), "text/plain");
  });
  srv.server().Get("/small", [](const httplib::Request&,
                                httplib::Response& res) {
    res.set_content(std::string(1000, 'x'), "text/plain");
  });
  srv.start();
  http_client client;
  auto req = local(srv, "/big");
  req.max_response_bytes = 1000;
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::tool_failed);
  EXPECT_TRUE(contains(message_of(resp.error()),
                       "exceeds the limit of 1000 bytes"))
    << message_of(resp.error());
  req.url = srv.url("/small");
  auto fits = client.perform(req);
  ASSERT_TRUE(fits) << describe(fits.error());
  EXPECT_EQ(fits->body.size(), 1000u);
}

namespace {

/// /r/N redirects to /r/N-1 ... /r/0, which answers "done".
void add_redirect_chain(loopback_server& srv) {
  srv.server().Get(R"(/r/(\d+))", [](const httplib::Request& req,
                                     httplib::Response& res) {
    int n = std::stoi(req.matches[1]);
    if (n == 0)
      res.set_content("done", "text/plain");
    else
      res.set_redirect("/r/" + std::to_string(n - 1), 302);
  });
}

} // namespace

TEST(HttpClient, FollowsRedirectsWithinTheLimit) {
  loopback_server srv;
  add_redirect_chain(srv);
  srv.start();
  http_client client;
  auto req = local(srv, "/r/3");
  req.max_redirects = 3;
  auto resp = client.perform(req);
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "done");
  EXPECT_EQ(resp->redirects, 3u);
  EXPECT_EQ(resp->url, srv.url("/r/0"));
}

TEST(HttpClient, RedirectsPastTheLimitAreAnError) {
  loopback_server srv;
  add_redirect_chain(srv);
  srv.start();
  http_client client;
  auto req = local(srv, "/r/3");
  req.max_redirects = 2;
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::tool_failed);
  EXPECT_TRUE(contains(message_of(resp.error()), "more than 2 redirects"))
    << message_of(resp.error());
}

TEST(HttpClient, ZeroRedirectsReturnsTheRedirect) {
  loopback_server srv;
  add_redirect_chain(srv);
  srv.start();
  http_client client;
  auto req = local(srv, "/r/1");
  req.max_redirects = 0;
  auto resp = client.perform(req);
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->status, 302);
  ASSERT_NE(resp->headers.find("location"), nullptr);
  EXPECT_EQ(*resp->headers.find("location"), "/r/0");
  EXPECT_EQ(srv.hits(), 1);
}

TEST(HttpClient, RedirectToABlockedAddressIsRefused) {
  loopback_server srv;
  srv.server().Get("/meta", [](const httplib::Request&,
                               httplib::Response& res) {
    res.set_redirect("http://169.254.169.254/latest/meta-data/", 302);
  });
  srv.server().Get("/other-host", [&srv](const httplib::Request&,
                                         httplib::Response& res) {
    res.set_redirect("http://localhost:" + std::to_string(srv.port()) + "/",
                     302);
  });
  srv.start();
  http_client client;
  auto resp = client.perform(local(srv, "/meta"));
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::invalid_input);
  auto msg = message_of(resp.error());
  EXPECT_TRUE(contains(msg, "169.254.169.254 is a link-local address")) << msg;
  // The host list is checked for each hop too.
  auto req = local(srv, "/other-host");
  req.policy.allowed_hosts = {"127.0.0.1"};
  auto other = client.perform(req);
  ASSERT_FALSE(other);
  EXPECT_EQ(code_of(other.error()), errc::invalid_input);
  EXPECT_TRUE(contains(message_of(other.error()), "host 'localhost'"))
    << message_of(other.error());
  EXPECT_EQ(srv.hits(), 2);
}

TEST(HttpClient, RedirectMethodRulesAndCredentialStripping) {
  loopback_server srv;
  auto echo = [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.method + "|" + req.body + "|"
                      + req.get_header_value("Authorization"),
                    "text/plain");
  };
  srv.server().Post("/see-other", [](const httplib::Request&,
                                     httplib::Response& res) {
    res.set_redirect("/target", 303);
  });
  srv.server().Post("/temporary", [](const httplib::Request&,
                                     httplib::Response& res) {
    res.set_redirect("/target", 307);
  });
  srv.server().Get("/away", [&srv](const httplib::Request&,
                                   httplib::Response& res) {
    res.set_redirect(
      "http://localhost:" + std::to_string(srv.port()) + "/target", 302);
  });
  srv.server().Get("/target", echo);
  srv.server().Post("/target", echo);
  srv.start();
  http_client client;
  auto req = local(srv, "/see-other", "POST");
  req.body = "payload";
  req.headers.add("Authorization", "Bearer t");
  auto see_other = client.perform(req);
  ASSERT_TRUE(see_other) << describe(see_other.error());
  EXPECT_EQ(see_other->body, "GET||Bearer t");
  req.url = srv.url("/temporary");
  auto temporary = client.perform(req);
  ASSERT_TRUE(temporary) << describe(temporary.error());
  EXPECT_EQ(temporary->body, "POST|payload|Bearer t");
  auto away_req = local(srv, "/away");
  away_req.headers.add("Authorization", "Bearer t");
  auto away = client.perform(away_req);
  ASSERT_TRUE(away) << describe(away.error());
  EXPECT_EQ(away->body, "GET||") << "credentials crossed to another origin";
}

TEST(HttpClient, StreamsA2xxBodyToTheSink) {
  loopback_server srv;
  srv.server().Get("/stream", [](const httplib::Request&,
                                 httplib::Response& res) {
    res.set_chunked_content_provider(
      "text/event-stream", [](size_t, httplib::DataSink& sink) {
        for (int i = 0; i < 3; ++i) {
          std::string event = "data: " + std::to_string(i) + "\n\n";
          sink.write(event.data(), event.size());
        }
        sink.done();
        return true;
      });
  });
  srv.server().Get("/missing", [](const httplib::Request&,
                                  httplib::Response& res) {
    res.status = 404;
    res.set_content(R"({"error":"no such model"})", "application/json");
  });
  srv.start();
  http_client client;
  std::string streamed;
  auto req = local(srv, "/stream");
  req.on_body = [&](std::string_view chunk) {
    streamed += chunk;
    return true;
  };
  auto resp = client.perform(req);
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(streamed, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  EXPECT_TRUE(resp->body.empty());
  // An error status keeps its body for the caller to read.
  streamed.clear();
  req.url = srv.url("/missing");
  auto missing = client.perform(req);
  ASSERT_TRUE(missing) << describe(missing.error());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, R"({"error":"no such model"})");
  EXPECT_TRUE(streamed.empty());
  // A sink that says stop ends the transfer.
  req.url = srv.url("/stream");
  req.on_body = [](std::string_view) { return false; };
  auto stopped = client.perform(req);
  ASSERT_FALSE(stopped);
  EXPECT_EQ(code_of(stopped.error()), errc::cancelled);
}

TEST(HttpClient, IdleTimeoutEndsASilentStream) {
  loopback_server srv;
  srv.server().Get("/silent", [&srv](const httplib::Request&,
                                     httplib::Response& res) {
    res.set_chunked_content_provider(
      "text/event-stream", [&srv](size_t, httplib::DataSink& sink) {
        std::string first = ": keep-alive\n\n";
        sink.write(first.data(), first.size());
        srv.wait_for_stop(30s);
        sink.done();
        return true;
      });
  });
  srv.start();
  http_client client;
  auto req = local(srv, "/silent");
  req.timeout = 60s;
  req.idle_timeout = 300ms;
  std::string streamed;
  req.on_body = [&](std::string_view chunk) {
    streamed += chunk;
    return true;
  };
  auto resp = client.perform(req);
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::timeout);
  EXPECT_TRUE(contains(message_of(resp.error()), "idle timeout"))
    << message_of(resp.error());
  EXPECT_EQ(streamed, ": keep-alive\n\n");
}

TEST(HttpClient, BadRequestsAreInvalidInput) {
  http_client client;
  auto bad = [&](http_request req) {
    auto resp = client.perform(req);
    EXPECT_FALSE(resp);
    return resp ? errc::ok : code_of(resp.error());
  };
  http_request req;
  req.url = "ftp://example.com/file";
  EXPECT_EQ(bad(req), errc::invalid_input);
  req.url = "not a url";
  EXPECT_EQ(bad(req), errc::invalid_input);
  req.url = "http://example.com/";
  req.method = "GE T";
  EXPECT_EQ(bad(req), errc::invalid_input);
  req.method = "GET";
  req.headers.add("X-Evil", "a\r\nInjected: yes");
  EXPECT_EQ(bad(req), errc::invalid_input);
}

// -- retries ------------------------------------------------------------------

namespace {

/// Records the waits asked for instead of sleeping.
struct recording_sleeper {
  std::vector<std::chrono::milliseconds> waits;
  retry_sleeper fn() {
    return [this](std::chrono::milliseconds ms) {
      waits.push_back(ms);
      return true;
    };
  }
};

} // namespace

TEST(HttpClientRetry, ServerErrorThenSuccessIsRetried) {
  loopback_server srv;
  std::atomic<int> calls{0};
  srv.server().Get("/flaky", [&](const httplib::Request&,
                                 httplib::Response& res) {
    if (++calls == 1) {
      res.status = 500;
      res.set_content("boom", "text/plain");
    } else {
      res.set_content("fine", "text/plain");
    }
  });
  srv.start();
  http_client client;
  recording_sleeper sleeper;
  retry_policy policy{.max_attempts = 3, .base_delay = 100ms};
  // The caller is told of each retry (an agent logs it): the attempt that
  // failed, its status (never the body) and the wait.
  std::vector<std::string> told;
  auto req = local(srv, "/flaky");
  req.on_retry = [&](uint32_t n, const std::string& why,
                     std::chrono::milliseconds delay) {
    told.push_back(std::to_string(n) + " " + why + " "
                   + std::to_string(delay.count() > 0));
  };
  auto resp = perform_with_retry(client, req, policy, sleeper.fn());
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "fine");
  EXPECT_EQ(resp->attempts, 2u);
  EXPECT_EQ(told, (std::vector<std::string>{"1 status 500 1"}));
  ASSERT_EQ(sleeper.waits.size(), 1u);
  // Backoff with jitter: base_delay scaled into [0.5, 1].
  EXPECT_GE(sleeper.waits[0], 50ms);
  EXPECT_LE(sleeper.waits[0], 100ms);
}

TEST(HttpClientRetry, RetryAfterIsHonoured) {
  loopback_server srv;
  std::atomic<int> calls{0};
  srv.server().Get("/busy", [&](const httplib::Request&,
                                httplib::Response& res) {
    int n = ++calls;
    if (n == 1) {
      res.status = 503;
      res.set_header("Retry-After", "2");
    } else if (n == 2) {
      res.status = 429;
      res.set_header("Retry-After", "Fri, 01 Jan 2100 00:00:00 GMT");
    } else {
      res.set_content("ok", "text/plain");
    }
  });
  srv.start();
  http_client client;
  recording_sleeper sleeper;
  retry_policy policy{.max_attempts = 5,
                      .base_delay = 10ms,
                      .max_delay = std::chrono::milliseconds{
                        std::numeric_limits<int64_t>::max() / 4}};
  auto resp = perform_with_retry(client, local(srv, "/busy"), policy,
                                 sleeper.fn());
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->attempts, 3u);
  ASSERT_EQ(sleeper.waits.size(), 2u);
  EXPECT_EQ(sleeper.waits[0], 2000ms);
  EXPECT_GT(sleeper.waits[1], std::chrono::hours{24 * 365});
}

TEST(HttpClientRetry, RetryAfterBeyondMaxDelayReturnsTheResponse) {
  loopback_server srv;
  srv.server().Get("/limited", [](const httplib::Request&,
                                  httplib::Response& res) {
    res.status = 429;
    res.set_header("Retry-After", "3600");
  });
  srv.start();
  http_client client;
  recording_sleeper sleeper;
  retry_policy policy{.max_attempts = 3, .max_delay = 10s};
  auto resp = perform_with_retry(client, local(srv, "/limited"), policy,
                                 sleeper.fn());
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->status, 429);
  EXPECT_EQ(resp->attempts, 1u);
  EXPECT_TRUE(sleeper.waits.empty());
}

TEST(HttpClientRetry, GivesUpAfterMaxAttemptsWithTheLastResponse) {
  loopback_server srv;
  srv.server().Get("/down", [](const httplib::Request&,
                               httplib::Response& res) {
    res.status = 502;
  });
  srv.server().Get("/missing", [](const httplib::Request&,
                                  httplib::Response& res) {
    res.status = 404;
  });
  srv.start();
  http_client client;
  recording_sleeper sleeper;
  retry_policy policy{.max_attempts = 3, .base_delay = 100ms};
  auto resp = perform_with_retry(client, local(srv, "/down"), policy,
                                 sleeper.fn());
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->status, 502);
  EXPECT_EQ(resp->attempts, 3u);
  ASSERT_EQ(sleeper.waits.size(), 2u);
  EXPECT_GE(sleeper.waits[1], 100ms); // 200 ms scaled into [0.5, 1]
  EXPECT_LE(sleeper.waits[1], 200ms);
  EXPECT_EQ(srv.hits(), 3);
  auto missing = perform_with_retry(client, local(srv, "/missing"), policy,
                                    sleeper.fn());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->attempts, 1u);
}

TEST(HttpClientRetry, ConnectionErrorsAreRetried) {
  int port = 0;
  {
    loopback_server gone;
    gone.start();
    port = gone.port();
  }
  http_client client;
  http_request req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  req.policy.allow_loopback = true;
  recording_sleeper sleeper;
  auto resp = perform_with_retry(client, req, retry_policy{.max_attempts = 3},
                                 sleeper.fn());
  ASSERT_FALSE(resp);
  EXPECT_EQ(code_of(resp.error()), errc::unavailable);
  EXPECT_TRUE(contains(message_of(resp.error()), "after 3 attempts"))
    << message_of(resp.error());
  EXPECT_EQ(sleeper.waits.size(), 2u);
  // A refused address is not worth a retry.
  req.policy.allow_loopback = false;
  sleeper.waits.clear();
  auto blocked = perform_with_retry(client, req,
                                    retry_policy{.max_attempts = 3},
                                    sleeper.fn());
  ASSERT_FALSE(blocked);
  EXPECT_EQ(code_of(blocked.error()), errc::invalid_input);
  EXPECT_TRUE(sleeper.waits.empty());
}

TEST(HttpClientRetry, DeadlineAndCancelStopTheRetries) {
  loopback_server srv;
  srv.server().Get("/busy", [](const httplib::Request&,
                               httplib::Response& res) {
    res.status = 503;
    res.set_header("Retry-After", "60");
  });
  srv.start();
  http_client client;
  recording_sleeper sleeper;
  retry_policy policy{.max_attempts = 5, .max_delay = 120s};
  // Waiting 60 s would pass the deadline: the 503 comes back at once.
  auto req = local(srv, "/busy");
  req.deadline_us = now_us() + 5'000'000;
  auto resp = perform_with_retry(client, req, policy, sleeper.fn());
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->status, 503);
  EXPECT_EQ(resp->attempts, 1u);
  EXPECT_TRUE(sleeper.waits.empty());
  // A wait that is interrupted is a cancellation.
  auto cancelled = perform_with_retry(client, local(srv, "/busy"), policy,
                                      [](std::chrono::milliseconds) {
                                        return false;
                                      });
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(code_of(cancelled.error()), errc::cancelled);
  // The default sleeper polls the cancel flag.
  auto flag = std::make_shared<std::atomic<bool>>(false);
  auto flagged = local(srv, "/busy");
  flagged.cancel_flag = flag;
  std::thread canceller{[flag] { flag->store(true); }};
  auto stopped = perform_with_retry(client, flagged, policy);
  canceller.join();
  // Either the transfer or the 60 s wait saw the flag.
  ASSERT_FALSE(stopped);
  EXPECT_EQ(code_of(stopped.error()), errc::cancelled);
}
