// The CLI's client of `cadre serve` without a server: problem documents as
// errors, URLs, event streams framed by the shared SSE parser, and
// api_client against canned answers of the API's shapes on loopback.

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli/client.hpp"
#include "loopback_server.hpp"

using namespace cadre;
using namespace cadre::runtime::cli;
using namespace std::chrono_literals;
using cadre::test::loopback_server;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// -- problem documents --------------------------------------------------------

TEST(ClientProblem, DocumentsBecomeErrorsWithDetailAndPointer) {
  struct row {
    long status;
    std::string body;
    errc code;
    std::string text;
  };
  const std::vector<row> rows = {
    {422,
     R"({"type": "/problems/invalid_input", "title": "Invalid input",
         "status": 422, "detail": "expected integer",
         "pointer": "/input/count", "request_id": "r-1"})",
     errc::invalid_input,
     "server: 422 invalid input: /input/count: expected integer"},
    // A pointer the detail names already is not repeated.
    {422,
     R"({"type": "/problems/invalid_input", "title": "Invalid input",
         "detail": "input: /input/count: expected integer",
         "pointer": "/input/count"})",
     errc::invalid_input,
     "server: 422 invalid input: input: /input/count: expected integer"},
    {422,
     R"({"type": "/problems/invalid_workflow", "title": "Invalid workflow",
         "detail": "2 errors", "errors": []})",
     errc::invalid_workflow, "server: 422 invalid workflow: 2 errors"},
    // Without a title, the type names the problem.
    {404, R"({"type": "/problems/not_found", "detail": "execution e1"})",
     errc::not_found, "server: 404 not found: execution e1"},
    {401, R"({"type": "/problems/unauthorized", "title": "Unauthorized"})",
     errc::invalid_config, "server: 401 unauthorized"},
    {409, R"({"title": "Conflict", "detail": "task approve was answered"})",
     errc::conflict, "server: 409 conflict: task approve was answered"},
    {503, R"({"title": "Overloaded", "detail": "queue full"})",
     errc::unavailable, "server: 503 overloaded: queue full"},
    // Not a problem document: a proxy's page, quoted.
    {502, "<html>bad gateway</html>", errc::unavailable,
     "server: 502: '<html>bad gateway</html>'"},
    {500, "", errc::internal, "server: 500"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.body);
    auto err = problem_error(r.status, r.body);
    EXPECT_EQ(code_of(err), r.code);
    EXPECT_EQ(message_of(err), r.text);
  }
}

// -- URLs ---------------------------------------------------------------------

TEST(ClientUrl, IdsAndQueryValuesArePercentEncoded) {
  EXPECT_EQ(percent_encode("e0193c1f2a4b17c3e9a"), "e0193c1f2a4b17c3e9a");
  EXPECT_EQ(percent_encode("A-z_0.9~"), "A-z_0.9~");
  EXPECT_EQ(percent_encode("a b/c?d#e%f&g=h"),
            "a%20b%2Fc%3Fd%23e%25f%26g%3Dh");
  EXPECT_EQ(percent_encode("agent:ü"), "agent%3A%C3%BC");
  api_client client{"http://127.0.0.1:8700//", "secret"};
  EXPECT_EQ(client.base_url(), "http://127.0.0.1:8700");
  EXPECT_EQ(client.url("/v1/executions/" + percent_encode("x/../y")),
            "http://127.0.0.1:8700/v1/executions/x%2F..%2Fy");
  EXPECT_EQ(client.url("/v1/executions",
                       {{"status", "waiting"}, {"cursor", "a+b=="}}),
            "http://127.0.0.1:8700/v1/executions?status=waiting&cursor="
            "a%2Bb%3D%3D");
  api_client behind_proxy{"https://example.com/cadre/", ""};
  EXPECT_EQ(behind_proxy.url("/v1/tools"),
            "https://example.com/cadre/v1/tools");
}

// -- stream framing -----------------------------------------------------------

std::string event_data(uint64_t seq, const std::string& type,
                       const std::string& payload = "{}") {
  return R"({"execution_id":"e1","seq":)" + std::to_string(seq)
         + R"(,"time_us":)" + std::to_string(1000 * seq) + R"(,"type":")"
         + type + R"(","payload":)" + payload + "}";
}

std::string sse(uint64_t seq, const std::string& type,
                const std::string& payload = "{}") {
  return "id: " + std::to_string(seq) + "\nevent: " + type
         + "\ndata: " + event_data(seq, type, payload) + "\n\n";
}

TEST(ClientStream, FramesEventsTokensAndEndWhateverThePieces) {
  const std::string stream
    = ": connected\r\n\r\n" + sse(1, "execution_submitted")
      + "event: token\n"
        R"(data: {"execution_id":"e1","task":"t","agent":"w","text":"Act"})"
        "\n\n"
        ": keep-alive\n\n"
      // Data over several lines, joined with '\n' (JSON whitespace).
      + "id: 2\nevent: task_dispatched\n"
        R"(data: {"execution_id":"e1","seq":2,"time_us":2000,)"
        "\n"
        R"(data: "type":"task_dispatched","payload":{"task":"t"}})"
        "\r\n\r\n"
      + sse(2, "task_dispatched") // a repeat: dropped
      + sse(3, "execution_completed")
      + "event: end\ndata: {\"status\":\"completed\",\"last_seq\":3}\n\n"
      + sse(4, "never_read");
  for (size_t size : {size_t{1}, size_t{2}, size_t{7}, size_t{64},
                      stream.size()}) {
    SCOPED_TRACE(size);
    std::vector<event> events;
    std::vector<event> tokens;
    stream_handlers h;
    h.on_event = [&](const event& ev) {
      events.push_back(ev);
      return true;
    };
    h.on_token = [&](const event& ev) {
      tokens.push_back(ev);
      return true;
    };
    stream_reader reader{0, h};
    bool going = true;
    for (size_t i = 0; i < stream.size() && going; i += size)
      going = reader.feed(std::string_view{stream}.substr(i, size));
    EXPECT_FALSE(going) << "end stops the stream";
    reader.finish();
    EXPECT_FALSE(reader.broken());
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].type, "execution_submitted");
    EXPECT_EQ(events[1].seq, 2u);
    EXPECT_EQ(events[1].payload.get()["task"], "t");
    EXPECT_EQ(events[2].type, "execution_completed");
    EXPECT_EQ(events[2].time_us, 3000);
    ASSERT_EQ(tokens.size(), 1u);
    EXPECT_EQ(tokens[0].type, "token");
    EXPECT_EQ(tokens[0].execution_id, "e1");
    EXPECT_EQ(tokens[0].payload.get(),
              (json{{"task", "t"}, {"agent", "w"}, {"text", "Act"}}));
    const auto& out = reader.outcome();
    EXPECT_EQ(out.ended, stream_outcome::how::ended);
    EXPECT_EQ(out.execution_id, "e1");
    EXPECT_EQ(out.last_seq, 3u);
    EXPECT_EQ(out.data["status"], "completed");
  }
}

TEST(ClientStream, CloseStopAndMalformedEvents) {
  {
    stream_reader reader{5, {}};
    // Events up to `after` count as seen.
    EXPECT_TRUE(reader.feed(sse(5, "task_dispatched") + sse(6, "x")));
    EXPECT_FALSE(reader.feed("event: close\ndata: {\"reason\":\"shutdown\","
                             "\"last_event_id\":6}\n\n"));
    EXPECT_EQ(reader.outcome().ended, stream_outcome::how::closed);
    EXPECT_EQ(reader.outcome().last_seq, 6u);
    EXPECT_EQ(reader.outcome().data["reason"], "shutdown");
  }
  {
    stream_handlers h;
    h.on_event = [](const event& ev) { return ev.seq < 2; };
    stream_reader reader{0, h};
    EXPECT_FALSE(reader.feed(sse(1, "a") + sse(2, "b") + sse(3, "c")));
    EXPECT_EQ(reader.outcome().ended, stream_outcome::how::stopped);
    EXPECT_EQ(reader.outcome().last_seq, 2u);
  }
  {
    stream_reader reader{0, {}};
    // Messages without an id that the client does not know are skipped.
    EXPECT_TRUE(reader.feed("event: hello\ndata: whatever\n\n"));
    EXPECT_FALSE(reader.feed("id: 1\nevent: x\ndata: [1,2]\n\n"));
    ASSERT_TRUE(reader.broken());
    EXPECT_TRUE(contains(message_of(reader.broken()), "not an event"))
      << message_of(reader.broken());
  }
  {
    // A body that ends without `end` is a dropped stream.
    stream_reader reader{0, {}};
    EXPECT_TRUE(reader.feed(sse(1, "a") + "id: 2\nevent: b\ndata: "
                            + event_data(2, "b")));
    reader.finish();
    EXPECT_EQ(reader.outcome().ended, stream_outcome::how::dropped);
    EXPECT_EQ(reader.outcome().last_seq, 2u);
  }
}

// -- api_client on loopback ---------------------------------------------------

void problem(httplib::Response& res, int status, const std::string& type,
             const std::string& detail, const std::string& pointer = {}) {
  json doc{{"type", "/problems/" + type},
           {"title", type},
           {"status", status},
           {"detail", detail},
           {"request_id", "r-1"}};
  if (!pointer.empty())
    doc["pointer"] = pointer;
  res.status = status;
  res.set_content(doc.dump(), "application/problem+json");
}

void sse_body(httplib::Response& res, std::string body) {
  res.set_chunked_content_provider(
    "text/event-stream", [body](size_t, httplib::DataSink& sink) {
      sink.write(body.data(), body.size());
      sink.done();
      return true;
    });
}

TEST(ApiClient, ReadsExecutionsPageByPageWithTheToken) {
  loopback_server srv;
  std::vector<std::string> auths;
  std::vector<std::string> queries;
  srv.server().Get("/v1/executions", [&](const httplib::Request& req,
                                         httplib::Response& res) {
    auths.push_back(req.get_header_value("Authorization"));
    queries.push_back(req.get_param_value("status") + "|"
                      + req.get_param_value("cursor"));
    json page;
    if (req.get_param_value("cursor").empty()) {
      page = json{{"executions",
                   {{{"id", "e2"},
                     {"workflow", "hello"},
                     {"version", "1"},
                     {"status", "waiting"},
                     {"created_us", 10},
                     {"updated_us", 20},
                     {"last_seq", 4},
                     {"output", nullptr},
                     {"error", ""}}}},
                  {"next_cursor", "c/2"}};
    } else {
      page = json{{"executions",
                   {{{"id", "e1"},
                     {"workflow", "hello"},
                     {"version", "1"},
                     {"status", "waiting"},
                     {"last_seq", 3}}}}};
    }
    res.set_content(page.dump(), "application/json");
  });
  srv.server().Get("/v1/executions/e 1", [&](const httplib::Request&,
                                            httplib::Response& res) {
    res.set_content(json{{"id", "e 1"},
                         {"workflow", "hello"},
                         {"version", "1"},
                         {"status", "completed"},
                         {"last_seq", 7},
                         {"output", {{"greeting", "hi"}}},
                         {"error", nullptr},
                         {"input", json::object()},
                         {"tasks", json::object()}}
                      .dump(),
                    "application/json");
  });
  srv.start();
  api_client client{srv.url(""), "secret"};
  auto first = client.executions("waiting", "");
  ASSERT_TRUE(first) << describe(first.error());
  ASSERT_EQ(first->executions.size(), 1u);
  EXPECT_EQ(first->executions[0].id, "e2");
  EXPECT_EQ(first->executions[0].last_seq, 4u);
  EXPECT_EQ(first->next_cursor, "c/2");
  auto second = client.executions("waiting", first->next_cursor);
  ASSERT_TRUE(second) << describe(second.error());
  ASSERT_EQ(second->executions.size(), 1u);
  EXPECT_EQ(second->executions[0].id, "e1");
  EXPECT_TRUE(second->next_cursor.empty());
  EXPECT_EQ(queries, (std::vector<std::string>{"waiting|", "waiting|c/2"}));
  EXPECT_EQ(auths, (std::vector<std::string>{"Bearer secret",
                                             "Bearer secret"}));
  // The id travels percent-encoded; httplib decodes the path.
  auto one = client.execution("e 1");
  ASSERT_TRUE(one) << describe(one.error());
  EXPECT_EQ(one->status, "completed");
  EXPECT_EQ(one->output.get()["greeting"], "hi");
  EXPECT_EQ(one->error, "");
}

TEST(ApiClient, ProblemsAndUnreachableServersAreNamedWithoutTheToken) {
  loopback_server srv;
  srv.server().Post(R"(/v1/executions/([^/]+)/input)",
                    [&](const httplib::Request& req, httplib::Response& res) {
                      auto body = json::parse(req.body);
                      if (body["task"] == "approve")
                        return problem(res, 422, "invalid_input",
                                       "expected boolean", "/value/approved");
                      res.status = 202;
                      res.set_content(json{{"seq", 9}}.dump(),
                                      "application/json");
                    });
  srv.server().Post(R"(/v1/executions/([^/]+)/cancel)",
                    [&](const httplib::Request&, httplib::Response& res) {
                      res.set_content(R"({"cancelled": false})",
                                      "application/json");
                    });
  srv.start();
  api_client client{srv.url(""), "s3cr3t-token"};
  auto bad = client.answer("e1", "approve", json{{"approved", "yes"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_input);
  EXPECT_EQ(message_of(bad.error()),
            "server: 422 invalid_input: /value/approved: expected boolean");
  EXPECT_EQ(client.last_problem()["request_id"], "r-1");
  auto seq = client.answer("e1", "other", json{true});
  ASSERT_TRUE(seq) << describe(seq.error());
  EXPECT_EQ(*seq, 9u);
  auto cancelled = client.cancel("e1");
  ASSERT_TRUE(cancelled) << describe(cancelled.error());
  EXPECT_FALSE(*cancelled);
  // An unknown route of this server is a 404 problem... from httplib, which
  // sends no document.
  auto tree = client.tree();
  ASSERT_FALSE(tree);
  EXPECT_EQ(code_of(tree.error()), errc::not_found);
  auto url = srv.url("");
  srv.stop();
  api_client gone{url, "s3cr3t-token"};
  auto down = gone.cancel("e1");
  ASSERT_FALSE(down);
  EXPECT_EQ(code_of(down.error()), errc::unavailable);
  auto msg = message_of(down.error());
  EXPECT_EQ(msg.rfind("cannot reach cadre serve at " + url + ": ", 0), 0u)
    << msg;
  EXPECT_FALSE(contains(msg, "s3cr3t")) << msg;
}

TEST(ApiClient, SubmitStreamsTheNewExecutionsEvents) {
  loopback_server srv;
  json received;
  std::string accept;
  srv.server().Post("/v1/executions", [&](const httplib::Request& req,
                                          httplib::Response& res) {
    received = json::parse(req.body);
    accept = req.get_header_value("Accept");
    res.status = 201;
    res.set_header("X-Execution-Id", "e1");
    sse_body(res, sse(1, "execution_submitted") + ": keep-alive\n\n"
                    + sse(2, "execution_completed")
                    + "event: end\ndata: {\"status\":\"completed\","
                      "\"last_seq\":2}\n\n");
  });
  srv.start();
  api_client client{srv.url(""), ""};
  std::vector<uint64_t> seqs;
  stream_handlers h;
  h.on_event = [&](const event& ev) {
    seqs.push_back(ev.seq);
    return true;
  };
  json body{{"definition", {{"name", "hello"}}},
            {"input", {{"name", "Ada"}}},
            {"idempotency_key", "k1"}};
  auto out = client.submit_stream(body, h);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(received, body);
  EXPECT_EQ(accept, "text/event-stream");
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(out->ended, stream_outcome::how::ended);
  EXPECT_EQ(out->execution_id, "e1");
  EXPECT_EQ(out->data["status"], "completed");
}

TEST(ApiClient, FollowResumesWithLastEventIdAfterCloseAndDrop) {
  loopback_server srv;
  std::vector<std::string> asked; // "after|Last-Event-ID" per connection
  srv.server().Get("/v1/executions/e1/events", [&](const httplib::Request& req,
                                                   httplib::Response& res) {
    asked.push_back(req.get_param_value("after") + "|"
                    + req.get_header_value("Last-Event-ID"));
    switch (asked.size()) {
      case 1:
        return sse_body(res, sse(3, "task_dispatched")
                               + "event: close\ndata: {\"reason\":"
                                 "\"overloaded\",\"last_event_id\":3}\n\n");
      case 2:
        // Ends without `end` or `close`: a dropped stream.
        return sse_body(res, sse(3, "task_dispatched") + sse(4, "x"));
      case 3:
        return problem(res, 503, "unavailable", "draining");
      default:
        return sse_body(res, sse(5, "execution_completed")
                               + "event: end\ndata: {\"status\":"
                                 "\"completed\",\"last_seq\":5}\n\n");
    }
  });
  srv.start();
  api_client client{srv.url(""), ""};
  std::vector<uint64_t> seqs;
  stream_handlers h;
  h.on_event = [&](const event& ev) {
    seqs.push_back(ev.seq);
    return true;
  };
  follow_options opts;
  opts.base_delay = 1ms;
  auto out = client.follow("e1", 2, h, opts);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->ended, stream_outcome::how::ended);
  EXPECT_EQ(out->last_seq, 5u);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(asked,
            (std::vector<std::string>{"2|", "|3", "|4", "|4"}));
}

TEST(ApiClient, FollowGivesUpAfterReconnectsWithoutProgress) {
  loopback_server srv;
  std::atomic<int> connections{0};
  srv.server().Get("/v1/executions/e1/events", [&](const httplib::Request&,
                                                   httplib::Response& res) {
    ++connections;
    sse_body(res, ": keep-alive\n\n");
  });
  srv.server().Get("/v1/executions/nope/events",
                   [&](const httplib::Request&, httplib::Response& res) {
                     problem(res, 404, "not_found", "execution nope");
                   });
  srv.start();
  api_client client{srv.url(""), ""};
  follow_options opts;
  opts.base_delay = 1ms;
  opts.max_reconnects = 2;
  auto out = client.follow("e1", 0, {}, opts);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::unavailable);
  EXPECT_TRUE(contains(message_of(out.error()), "after 2 reconnections"))
    << message_of(out.error());
  EXPECT_EQ(connections.load(), 3);
  // A problem on the first connection is the answer, not retried.
  auto missing = client.follow("nope", 0, {}, opts);
  ASSERT_FALSE(missing);
  EXPECT_EQ(code_of(missing.error()), errc::not_found);
}

} // namespace
