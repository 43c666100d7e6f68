// `cadre serve` as clients use it: real server processes on loopback, real
// HTTP requests and event streams, kill -9 and SIGTERM.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "cadre/messages/json_value.hpp"
#include "cadre_process.hpp"
#include "cadre_server.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using test::body_of;
using test::cadre_process;
using test::clock_type;
using test::connect_to;
using test::get;
using test::post;
using server = test::cadre_server;
using namespace std::chrono_literals;

namespace {

// A server may close a connection while a test still writes a body (413).
[[maybe_unused]] const bool sigpipe_ignored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string source_path(const std::string& relative) {
  return std::string{CADRE_SOURCE_DIR} + "/" + relative;
}

/// One Server-Sent Event as a client sees it.
struct sse_event {
  std::string id;
  std::string type;
  std::string data;
};

/// Splits an event stream into events; comments are dropped.
class sse_parser {
public:
  void feed(const char* data, size_t n, std::vector<sse_event>& out) {
    buf_.append(data, n);
    for (;;) {
      auto end = buf_.find("\n\n");
      if (end == std::string::npos)
        return;
      auto block = buf_.substr(0, end);
      buf_.erase(0, end + 2);
      sse_event ev;
      bool any = false;
      size_t start = 0;
      while (start <= block.size()) {
        auto nl = block.find('\n', start);
        auto line = block.substr(start, nl == std::string::npos
                                          ? std::string::npos
                                          : nl - start);
        if (line.rfind("id: ", 0) == 0)
          ev.id = line.substr(4), any = true;
        else if (line.rfind("event: ", 0) == 0)
          ev.type = line.substr(7), any = true;
        else if (line.rfind("data: ", 0) == 0)
          ev.data += (ev.data.empty() ? "" : "\n") + line.substr(6),
            any = true;
        if (nl == std::string::npos)
          break;
        start = nl + 1;
      }
      if (any)
        out.push_back(std::move(ev));
    }
  }

private:
  std::string buf_;
};

/// Reads an event stream until `stop` says so or the stream ends.
std::vector<sse_event>
read_stream(const server& s, const std::string& path,
            const httplib::Headers& headers,
            const std::function<bool(const sse_event&)>& stop) {
  auto c = s.client();
  std::vector<sse_event> events;
  sse_parser parser;
  httplib::Headers h = headers;
  h.emplace("Accept", "text/event-stream");
  c.Get(path.c_str(), h, [&](const char* data, size_t n) {
    std::vector<sse_event> got;
    parser.feed(data, n, got);
    for (auto& ev : got) {
      events.push_back(ev);
      if (stop(ev))
        return false;
    }
    return true;
  });
  return events;
}

std::string yaml_of(const std::string& file) {
  return test::read_file(source_path(file));
}

const char* chain_yaml = R"(name: slow_chain
version: 1
tasks:
  - id: a
    tool: sleep
    input: {ms: 150}
  - id: b
    depends_on: a
    tool: sleep
    input: {ms: 150}
  - id: c
    depends_on: b
    tool: sleep
    input: {ms: 150}
  - id: d
    depends_on: c
    tool: sleep
    input: {ms: 150}
  - id: e
    depends_on: d
    tool: sleep
    input: {ms: 150}
)";

const char* human_yaml = R"(name: approval
version: 1
tasks:
  - id: ask
    kind: human
    prompt: "Ship it?"
    answer_schema:
      type: object
      properties: {ok: {type: boolean}}
      required: [ok]
output:
  shipped: "{{ tasks.ask.output.ok }}"
)";

int put_workflow(const server& s, const std::string& name,
                 const std::string& yaml, json* body = nullptr) {
  auto c = s.client();
  auto r = c.Put(("/v1/workflows/" + name).c_str(), yaml, "application/yaml");
  if (body)
    *body = body_of(r);
  return r ? r->status : -1;
}

// Sends `request` and reads until the end of the response headers (or the
// connection's end).
std::string exchange_head(int fd, const std::string& request) {
  ::send(fd, request.data(), request.size(), 0);
  std::string got;
  char c;
  while (got.find("\r\n\r\n") == std::string::npos
         && ::recv(fd, &c, 1, 0) == 1)
    got += c;
  return got;
}

// Reads what `fd` receives until the connection's end, then closes it.
std::string read_to_end(int fd) {
  std::string got;
  char buf[65536];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return got;
}

} // namespace

TEST(Serve, ProbesMetricsAndEveryDocumentedRoute) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  int status = 0;
  EXPECT_EQ(get(s, "/healthz", &status)["status"], "ok");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(get(s, "/readyz", &status)["status"], "ready");
  EXPECT_EQ(status, 200);
  auto c = s.client();
  // A request is counted once its response is written, which may be just
  // after the client read it: wait for the count, with a deadline.
  auto metrics = c.Get("/metrics");
  for (auto deadline = test::clock_type::now() + std::chrono::seconds{10};
       metrics
       && metrics->body.find("cadre_http_requests_total{route=\"/healthz\"")
            == std::string::npos
       && test::clock_type::now() < deadline;
       metrics = c.Get("/metrics"))
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("cadre_http_requests_total{route=\"/healthz\""),
            std::string::npos);
  EXPECT_NE(metrics->body.find("cadre_http_request_duration_seconds_bucket"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("cadre_executions{status=\"running\"}"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("cadre_tool_pool_queue_depth{tool=\"echo\"}"),
            std::string::npos);
  // Every route of the OpenAPI document is served: no "no route" 404 and
  // no 405 for any documented method and path.
  auto doc = get(s, "/openapi.json", &status);
  ASSERT_EQ(status, 200);
  ASSERT_TRUE(doc.contains("paths"));
  EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 3), "3.1");
  size_t checked = 0;
  for (auto& [path, ops] : doc["paths"].items()) {
    auto concrete = std::regex_replace(path, std::regex{"\\{[^}]+\\}"}, "x");
    for (auto& [method, op] : ops.items()) {
      (void) op;
      httplib::Request req;
      req.method = method;
      for (auto& ch : req.method)
        ch = static_cast<char>(std::toupper(ch));
      req.path = concrete;
      if (concrete == "/v1/events")
        req.path = "/v1/events?probe=1"; // a stream: checked elsewhere
      if (req.method != "GET" && req.method != "DELETE") {
        req.body = "{}";
        req.set_header("Content-Type", "application/json");
      }
      if (concrete.find("/events") != std::string::npos)
        continue;
      auto r = c.send(req);
      ASSERT_TRUE(r) << method << " " << path;
      auto j = json::parse(r->body, nullptr, false);
      EXPECT_NE(r->status, 405) << method << " " << path << ": " << r->body;
      if (r->status == 404) {
        EXPECT_EQ(j.value("detail", std::string{}).rfind("no route", 0),
                  std::string::npos)
          << method << " " << path;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 15u);
  // And what is not documented is not served.
  auto none = get(s, "/v1/nothing", &status);
  EXPECT_EQ(status, 404);
  EXPECT_EQ(none["type"], "/problems/not_found");
  auto r = c.Delete("/v1/executions");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "POST, GET");
}

TEST(Serve, WorkflowsAreStoredVersionedAndValidated) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  json body;
  EXPECT_EQ(put_workflow(s, "hello", yaml_of("examples/hello.yaml"), &body),
            201);
  EXPECT_EQ(body["version"], "1");
  // The same again is a no-op; other content under the same version is not.
  EXPECT_EQ(put_workflow(s, "hello", yaml_of("examples/hello.yaml")), 200);
  auto changed = yaml_of("examples/hello.yaml");
  changed.replace(changed.find("Greets someone"), 14, "Greets anybody");
  EXPECT_EQ(put_workflow(s, "hello", changed, &body), 409) << body.dump();
  // Without a version in the document, the next one is assigned.
  std::string unversioned = human_yaml;
  unversioned.erase(unversioned.find("version: 1\n"), 11);
  EXPECT_EQ(put_workflow(s, "approval", unversioned, &body), 201);
  EXPECT_EQ(body["version"], "1");
  unversioned.replace(unversioned.find("Ship it?"), 8, "Ship now?");
  EXPECT_EQ(put_workflow(s, "approval", unversioned, &body), 201);
  EXPECT_EQ(body["version"], "2");
  int status = 0;
  auto list = get(s, "/v1/workflows", &status);
  ASSERT_EQ(status, 200);
  ASSERT_EQ(list["workflows"].size(), 2u);
  EXPECT_EQ(list["workflows"][0]["name"], "approval");
  EXPECT_EQ(list["workflows"][0]["latest"], "2");
  auto v1 = get(s, "/v1/workflows/approval?version=1", &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(v1["definition"]["tasks"][0]["prompt"], "Ship it?");
  EXPECT_EQ(get(s, "/v1/workflows/approval")["version"], "2");
  // Located errors: line and pointer of the first, every error listed.
  EXPECT_EQ(put_workflow(s, "broken",
                         "name: broken\ntasks:\n  - id: a\n    tool: nope\n",
                         &body),
            422);
  EXPECT_EQ(body["type"], "/problems/invalid_workflow");
  EXPECT_EQ(body["line"], 4);
  EXPECT_EQ(body["pointer"], "/tasks/0/tool");
  EXPECT_FALSE(body["errors"].empty());
  EXPECT_EQ(put_workflow(s, "other", yaml_of("examples/hello.yaml"), &body),
            422);
  EXPECT_EQ(body["pointer"], "/name");
  auto c = s.client();
  auto del = c.Delete("/v1/workflows/approval");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 204);
  get(s, "/v1/workflows/approval", &status);
  EXPECT_EQ(status, 404);
}

TEST(Serve, ExecutionsRunListAndPage) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(put_workflow(s, "hello", yaml_of("examples/hello.yaml")), 201);
  int status = 0;
  auto done = post(s, "/v1/executions?wait=30",
                   json{{"workflow", "hello"},
                        {"input", {{"name", "Ada"}, {"shout", true}}}},
                   &status);
  ASSERT_EQ(status, 200) << done.dump();
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(done["output"]["greeting"], "HELLO, ADA!");
  EXPECT_EQ(done["tasks"]["greet"]["state"], "completed");
  EXPECT_EQ(done["tasks"]["greet"]["attempts"], 1);
  EXPECT_EQ(done["input"]["name"], "Ada");
  // An inline definition and a bad input: 422 pointing into the input.
  auto bad = post(s, "/v1/executions",
                  json{{"workflow", "hello"}, {"input", {{"name", 5}}}},
                  &status);
  EXPECT_EQ(status, 422);
  EXPECT_EQ(bad["pointer"], "/input/name");
  std::vector<std::string> ids{done["id"].get<std::string>()};
  for (int i = 0; i < 2; ++i) {
    auto sub = post(s, "/v1/executions?wait=30",
                    json{{"workflow", "hello"},
                         {"input", {{"name", "n" + std::to_string(i)}}}},
                    &status);
    ASSERT_EQ(status, 200);
    ids.push_back(sub["id"].get<std::string>());
    std::this_thread::sleep_for(2ms); // ids are time-ordered by the ms
  }
  // Newest first, two a page.
  auto page1 = get(s, "/v1/executions?limit=2&workflow=hello", &status);
  ASSERT_EQ(status, 200);
  ASSERT_EQ(page1["executions"].size(), 2u);
  EXPECT_EQ(page1["executions"][0]["id"], ids[2]);
  ASSERT_TRUE(page1.contains("next_cursor"));
  auto page2 = get(s, "/v1/executions?limit=2&workflow=hello&cursor="
                        + page1["next_cursor"].get<std::string>(),
                   &status);
  ASSERT_EQ(page2["executions"].size(), 1u);
  EXPECT_EQ(page2["executions"][0]["id"], ids[0]);
  EXPECT_FALSE(page2.contains("next_cursor"));
  auto bogus = get(s, "/v1/executions?status=bogus", &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(bogus["detail"].get<std::string>().find("bogus"),
            std::string::npos);
  get(s, "/v1/executions/e-unknown", &status);
  EXPECT_EQ(status, 404);
  // Events, paged.
  auto evs = get(s, "/v1/executions/" + ids[0] + "/events?after=2&limit=3",
                 &status);
  ASSERT_EQ(status, 200);
  ASSERT_EQ(evs["events"].size(), 3u);
  EXPECT_EQ(evs["events"][0]["seq"], 3);
  EXPECT_EQ(evs["next_after"], 5);
  // Task outcomes are counted.
  auto c = s.client();
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("cadre_tasks_total{outcome=\"completed\"}"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("cadre_executions{status=\"completed\"} 3"),
            std::string::npos);
}

TEST(Serve, OneIdempotencyKeyNamesOneExecutionUnderConcurrency) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(put_workflow(s, "hello", yaml_of("examples/hello.yaml")), 201);
  constexpr int clients = 8;
  std::vector<std::string> ids(clients);
  std::vector<int> statuses(clients);
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      auto r = post(s, "/v1/executions",
                    json{{"workflow", "hello"},
                         {"input", {{"name", "Ada"}}},
                         {"idempotency_key", "order-17"}},
                    &statuses[i]);
      ids[i] = r.value("id", std::string{});
    });
  for (auto& t : threads)
    t.join();
  std::set<std::string> distinct(ids.begin(), ids.end());
  EXPECT_EQ(distinct.size(), 1u);
  EXPECT_FALSE(ids[0].empty());
  int created = 0;
  for (int st : statuses) {
    EXPECT_TRUE(st == 200 || st == 201) << st;
    created += st == 201;
  }
  EXPECT_GE(created, 1);
  int status = 0;
  auto all = get(s, "/v1/executions?workflow=hello", &status);
  EXPECT_EQ(all["executions"].size(), 1u);
  // The key with another input is a conflict naming the key.
  auto conflict = post(s, "/v1/executions",
                       json{{"workflow", "hello"},
                            {"input", {{"name", "Bob"}}},
                            {"idempotency_key", "order-17"}},
                       &status);
  EXPECT_EQ(status, 409);
  EXPECT_NE(conflict["detail"].get<std::string>().find("order-17"),
            std::string::npos);
}

TEST(Serve, HumanTaskIsAnsweredOverHttpAndStreamed) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(put_workflow(s, "approval", human_yaml), 201);
  int status = 0;
  auto sub = post(s, "/v1/executions?wait=30", json{{"workflow", "approval"}},
                  &status);
  ASSERT_EQ(status, 200) << sub.dump();
  ASSERT_EQ(sub["status"], "waiting");
  ASSERT_EQ(sub["waiting"].size(), 1u);
  EXPECT_EQ(sub["waiting"][0]["task"], "ask");
  EXPECT_EQ(sub["waiting"][0]["prompt"], "Ship it?");
  EXPECT_EQ(sub["waiting"][0]["answer_schema"]["required"][0], "ok");
  auto id = sub["id"].get<std::string>();
  // A stream opened while it waits sees the answer and the end.
  std::vector<sse_event> events;
  std::thread reader{[&] {
    events = read_stream(s, "/v1/executions/" + id + "/events", {},
                         [](const sse_event& ev) { return ev.type == "end"; });
  }};
  auto wrong = post(s, "/v1/executions/" + id + "/input",
                    json{{"task", "ask"}, {"value", {{"ok", "yes"}}}},
                    &status);
  EXPECT_EQ(status, 422);
  EXPECT_EQ(wrong["pointer"], "/value/ok");
  auto nope = post(s, "/v1/executions/" + id + "/input",
                   json{{"task", "nope"}, {"value", true}}, &status);
  EXPECT_TRUE(status == 404 || status == 409) << nope.dump();
  auto ok = post(s, "/v1/executions/" + id + "/input",
                 json{{"task", "ask"}, {"value", {{"ok", true}}}}, &status);
  ASSERT_EQ(status, 202) << ok.dump();
  auto seq = ok["seq"].get<uint64_t>();
  auto again = post(s, "/v1/executions/" + id + "/input",
                    json{{"task", "ask"}, {"value", {{"ok", true}}}},
                    &status);
  EXPECT_EQ(status, 409) << again.dump();
  reader.join();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, "end");
  EXPECT_EQ(json::parse(events.back().data)["status"], "completed");
  // The acknowledged seq is the answer's event in the log.
  auto evs = get(s, "/v1/executions/" + id + "/events?after="
                      + std::to_string(seq - 1) + "&limit=1");
  ASSERT_EQ(evs["events"].size(), 1u);
  EXPECT_EQ(evs["events"][0]["type"], "task_completed");
  EXPECT_EQ(evs["events"][0]["payload"]["task"], "ask");
  // Ids are dense and in order, each once.
  uint64_t expect = 1;
  for (auto& ev : events) {
    if (ev.id.empty())
      continue;
    EXPECT_EQ(std::stoull(ev.id), expect++);
  }
}

TEST(Serve, StreamResumesWithLastEventIdAcrossKill9) {
  test::temp_dir dir;
  auto db = dir.str() + "/db";
  std::string id;
  std::vector<sse_event> first;
  {
    server s{db};
    ASSERT_TRUE(s.ok());
    ASSERT_EQ(put_workflow(s, "slow_chain", chain_yaml), 201);
    int status = 0;
    auto sub = post(s, "/v1/executions", json{{"workflow", "slow_chain"}},
                    &status);
    ASSERT_EQ(status, 201);
    id = sub["id"].get<std::string>();
    // Read until the second task has completed, then kill the server.
    int completed = 0;
    first = read_stream(s, "/v1/executions/" + id + "/events", {},
                        [&](const sse_event& ev) {
                          return ev.type == "task_completed"
                                 && ++completed == 2;
                        });
    s.proc().kill_now();
  }
  ASSERT_FALSE(first.empty());
  auto last_id = first.back().id;
  ASSERT_FALSE(last_id.empty());
  server s{db};
  ASSERT_TRUE(s.ok());
  auto rest = read_stream(s, "/v1/executions/" + id + "/events",
                          {{"Last-Event-ID", last_id}},
                          [](const sse_event& ev) { return ev.type == "end"; });
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().type, "end");
  EXPECT_EQ(json::parse(rest.back().data)["status"], "completed");
  // Every event exactly once across the two streams, dense from 1.
  std::vector<uint64_t> seqs;
  for (auto* part : {&first, &rest})
    for (auto& ev : *part)
      if (!ev.id.empty())
        seqs.push_back(std::stoull(ev.id));
  ASSERT_FALSE(seqs.empty());
  for (size_t i = 0; i < seqs.size(); ++i)
    EXPECT_EQ(seqs[i], i + 1) << "at " << i;
  int status = 0;
  auto info = get(s, "/v1/executions/" + id, &status);
  EXPECT_EQ(info["status"], "completed");
  EXPECT_EQ(seqs.back(), info["last_seq"].get<uint64_t>());
  // Resuming after the very last event of a finished execution ends at once.
  auto after_end = read_stream(
    s, "/v1/executions/" + id + "/events",
    {{"Last-Event-ID", std::to_string(seqs.back())}},
    [](const sse_event& ev) { return ev.type == "end"; });
  ASSERT_EQ(after_end.size(), 1u);
  EXPECT_EQ(after_end[0].type, "end");
}

TEST(Serve, SigtermDrainsAndEndsStreams) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(put_workflow(s, "approval", human_yaml), 201);
  int status = 0;
  auto sub = post(s, "/v1/executions?wait=30", json{{"workflow", "approval"}},
                  &status);
  ASSERT_EQ(sub["status"], "waiting");
  auto id = sub["id"].get<std::string>();
  std::vector<sse_event> events;
  std::atomic<bool> opened{false};
  std::thread reader{[&] {
    events = read_stream(s, "/v1/executions/" + id + "/events", {},
                         [&](const sse_event& ev) {
                           opened = true;
                           return ev.type == "close";
                         });
  }};
  for (int i = 0; i < 500 && !opened; ++i)
    std::this_thread::sleep_for(10ms);
  s.proc().signal(SIGTERM);
  reader.join();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, "close");
  auto data = json::parse(events.back().data);
  EXPECT_EQ(data["reason"], "shutdown");
  // submitted, human_requested
  EXPECT_EQ(data["last_event_id"], 2);
  auto st = s.proc().wait_until(clock_type::now() + 60s);
  ASSERT_TRUE(st.has_value()) << "still running after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
    << test::describe_status(*st) << s.proc().stderr_text();
}

// A request still in hand when the drain timeout passes (here a client that
// sent half a request head and waits) is left as a kill would leave it: the
// process says so and exits, instead of destroying the server and the node
// under that request's thread.
TEST(Serve, RequestsInHandPastTheDrainTimeoutEndTheProcess) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  std::ofstream{cfg} << "server:\n  drain_timeout: 200ms\n"
                        "  read_timeout: 60s\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  int fd = connect_to(s.port());
  ASSERT_GE(fd, 0);
  const std::string half = "POST /v1/executions HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(::send(fd, half.data(), half.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(half.size()));
  // Once a thread has the connection in hand (the other requests finish).
  int status = 0;
  get(s, "/healthz", &status);
  ASSERT_EQ(status, 200);
  s.proc().signal(SIGTERM);
  auto st = s.proc().wait_until(clock_type::now() + 60s);
  ::close(fd);
  ASSERT_TRUE(st.has_value()) << "still running after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
    << test::describe_status(*st) << s.proc().stderr_text();
  auto err = s.proc().stderr_text();
  EXPECT_NE(err.find("drain timeout passed; exiting with requests in hand"),
            std::string::npos)
    << err;
  EXPECT_NE(err.find("requests=1"), std::string::npos) << err;
  // The store opens again: the next node starts on it.
  server again{dir.str() + "/db"};
  EXPECT_TRUE(again.ok());
}

TEST(Serve, SlowStreamClientIsCutOffNotBuffered) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  std::ofstream{cfg} << "server:\n  sse: {queue: 16}\n  write_timeout: 30s\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  // A client that opens the all-executions stream and does not read.
  int fd = connect_to(s.port(), 4096);
  ASSERT_GE(fd, 0);
  std::string req = "GET /v1/events HTTP/1.1\r\nHost: x\r\n"
                    "Accept: text/event-stream\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0),
            static_cast<ssize_t>(req.size()));
  // A flood of events with large payloads.
  std::string big(20000, 'x');
  auto doc = json{{"name", "flood"},
                  {"tasks", json::array({json{{"id", "a"},
                                              {"tool", "echo"},
                                              {"input", {{"text", big}}}}})}};
  for (int i = 0; i < 150; ++i) {
    int status = 0;
    post(s, "/v1/executions", json{{"definition", doc}}, &status);
    ASSERT_EQ(status, 201);
  }
  // The server stays responsive and counted the cut-off stream.
  bool cut = false;
  for (int i = 0; i < 200 && !cut; ++i) {
    auto c = s.client();
    auto m = c.Get("/metrics");
    ASSERT_TRUE(m);
    cut = m->body.find("cadre_sse_cut_off_total 0") == std::string::npos;
    if (!cut)
      std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(cut) << "the slow stream was never cut off";
  // What the client gets when it reads again ends with the close event.
  auto got = read_to_end(fd);
  EXPECT_NE(got.find("event: close\ndata: {\"reason\":\"overloaded\""),
            std::string::npos);
}

TEST(Serve, BadBodiesGetProblemDocumentsThatNameThePlace) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  auto c = s.client();
  auto send = [&](const std::string& body) {
    auto r = c.Post("/v1/executions", body, "application/json");
    EXPECT_TRUE(r);
    return std::make_pair(r ? r->status : -1, body_of(r));
  };
  auto [s1, invalid] = send("{\"workflow\": \"x\",\n  \"input\": }");
  EXPECT_EQ(s1, 400);
  EXPECT_EQ(invalid["line"], 2);
  EXPECT_EQ(invalid["type"], "/problems/bad_request");
  auto [s2, wrong] = send(R"({"workflow": 7})");
  EXPECT_EQ(s2, 400);
  EXPECT_EQ(wrong["pointer"], "/workflow");
  auto [s3, unknown] = send(R"({"workflow": "x", "inptu": {}})");
  EXPECT_EQ(s3, 400);
  EXPECT_EQ(unknown["pointer"], "/inptu");
  auto [s4, bytes] = send("{\"workflow\": \"caf\xe9\"}");
  EXPECT_EQ(s4, 400);
  EXPECT_NE(bytes["detail"].get<std::string>().find("UTF-8"),
            std::string::npos);
  std::string deep(100000, '[');
  auto [s5, nested] = send("{\"input\": " + deep + "}");
  EXPECT_EQ(s5, 400);
  EXPECT_NE(nested["detail"].get<std::string>().find("deeper"),
            std::string::npos);
  auto [s6, missing] = send(R"({"workflow": "nope"})");
  EXPECT_EQ(s6, 404);
  EXPECT_EQ(missing["type"], "/problems/not_found");
  // 50 MB: refused from its Content-Length, before a byte of it is read.
  int fd = connect_to(s.port());
  ASSERT_GE(fd, 0);
  std::string head = "POST /v1/executions HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 52428800\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), 0),
            static_cast<ssize_t>(head.size()));
  auto answer = read_to_end(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_NE(answer.find("/problems/too_large"), std::string::npos);
  // Still serving.
  int status = 0;
  get(s, "/healthz", &status);
  EXPECT_EQ(status, 200);
}

// Sends `head`, then `piece` after piece until `cap` bytes are sent or the
// server stops taking them; the bytes sent and the answer read then.
std::pair<size_t, std::string> send_endless_head(int port,
                                                 const std::string& head,
                                                 const std::string& piece,
                                                 size_t cap) {
  int fd = connect_to(port);
  if (fd < 0)
    return {0, "no connection"};
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  auto send_all = [fd](const std::string& bytes) {
    for (size_t off = 0; off < bytes.size();) {
      auto n = ::send(fd, bytes.data() + off, bytes.size() - off,
                      MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      off += static_cast<size_t>(n);
    }
    return true;
  };
  size_t sent = 0;
  if (send_all(head))
    while (sent < cap && send_all(piece))
      sent += piece.size();
  return {sent, read_to_end(fd)};
}

// Sends `head` (a request line and headers), then a body without end, a
// chunk of 64 KiB after another (`chunked`) or bare bytes, until `cap`
// bytes are sent or the server stops taking them; the bytes sent and the
// answer read then.
std::pair<size_t, std::string> send_endless_body(int port,
                                                 const std::string& head,
                                                 bool chunked, size_t cap) {
  const std::string data(64 << 10, 'x');
  return send_endless_head(port, head,
                           chunked ? "10000\r\n" + data + "\r\n" : data, cap);
}

TEST(Serve, EveryBodyIsBoundedWhateverItsFraming) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  std::ofstream{cfg} << "server:\n  max_body_bytes: 1000\n"
                        "  read_timeout: 3s\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  // Each request's body never ends, and 64 MiB of it is offered: a server
  // holding bodies whole would take all of it and still wait for the end.
  // Loopback's socket buffers hold a few MiB: the client sending less than
  // the cap means the server stopped taking the body and closed.
  const size_t cap = size_t{64} << 20;
  const std::string chunked = "Transfer-Encoding: chunked\r\n\r\n";
  struct endless {
    std::string head;
    bool chunked;
    std::string status;
  };
  const std::vector<endless> cases{
    // Chunked, on a route that takes a body: 413 once over the limit.
    {"POST /v1/executions HTTP/1.1\r\nHost: x\r\n"
     "Content-Type: application/json\r\n" + chunked,
     true, "413"},
    {"PUT /v1/workflows/w HTTP/1.1\r\nHost: x\r\n"
     "Content-Type: application/yaml\r\n" + chunked,
     true, "413"},
    // On no route, and with a method no route serves.
    {"POST /v1/nowhere HTTP/1.1\r\nHost: x\r\n" + chunked, true, "413"},
    {"PATCH /v1/workflows/w HTTP/1.1\r\nHost: x\r\n" + chunked, true,
     "413"},
    {"PRI /v1/executions HTTP/1.1\r\nHost: x\r\n" + chunked, true,
     "405"},
    // A body the server does not read: the answer ends the connection
    // rather than reading the body as the next request.
    {"GET /healthz HTTP/1.1\r\nHost: x\r\n" + chunked, true, "200"},
    // A declared length over the limit, the body sent all the same.
    {"POST /v1/executions HTTP/1.1\r\nHost: x\r\n"
     "Content-Type: application/json\r\nContent-Length: 67108864\r\n\r\n",
     false, "413"},
  };
  for (const auto& c : cases) {
    auto [sent, answer] = send_endless_body(s.port(), c.head, c.chunked, cap);
    auto line = c.head.substr(0, c.head.find('\r'));
    EXPECT_EQ(answer.rfind("HTTP/1.1 " + c.status, 0), 0u)
      << line << ": " << answer.substr(0, 400);
    EXPECT_LT(sent, cap) << line;
    if (c.status == "413") {
      EXPECT_NE(answer.find("/problems/too_large"), std::string::npos)
        << line;
      // "the body has N bytes; the limit is 1000" when declared, "the
      // body is over 1000 bytes" when chunked.
      EXPECT_TRUE(
        answer.find("the limit is 1000 (server.max_body_bytes)")
          != std::string::npos
        || answer.find("over 1000 bytes (server.max_body_bytes)")
             != std::string::npos)
        << line << ": " << answer.substr(0, 400);
    }
  }
  // Under the limit, chunked bodies are read and handed to their routes.
  auto c = s.client();
  auto chunks = [](std::string body) {
    return [body](size_t offset, httplib::DataSink& sink) {
      if (offset < body.size())
        sink.write(body.data() + offset,
                   std::min<size_t>(50, body.size() - offset));
      else
        sink.done();
      return true;
    };
  };
  ASSERT_LT(std::string{human_yaml}.size(), 1000u);
  auto put = c.Put("/v1/workflows/approval", chunks(human_yaml),
                   "application/yaml");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 201) << put->body;
  auto sub = c.Post("/v1/executions?wait=30",
                    chunks(R"({"workflow": "approval"})"), "application/json");
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->status, 200) << sub->body;
  EXPECT_EQ(body_of(sub)["status"], "waiting") << sub->body;
  // A bad one is still named where it is wrong.
  auto bad = c.Post("/v1/executions", chunks("{\"workflow\": \"x\",\n }"),
                    "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_EQ(body_of(bad)["line"], 2) << bad->body;
  int status = 0;
  get(s, "/healthz", &status);
  EXPECT_EQ(status, 200);
}

// A request line or headers without end: the server holds a bounded part
// of them, answers 414 or 431 with a problem document, ends the connection
// and serves the next request.
TEST(Serve, EveryRequestHeadIsBounded) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  std::ofstream{cfg} << "server:\n  read_timeout: 3s\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  // 64 MiB offered; loopback's socket buffers hold a few MiB, so sending
  // less means the server stopped taking them and closed.
  const size_t cap = size_t{64} << 20;
  std::string line_piece(64 << 10, 'x');
  std::string header_lines;
  while (header_lines.size() < (64u << 10))
    header_lines += "X-Pad: " + std::string(100, 'y') + "\r\n";
  struct endless {
    std::string head;
    std::string piece;
    std::string status;
    std::string type;
  };
  const std::vector<endless> cases{
    {"GET /", line_piece, "414", "/problems/uri_too_long"},
    {"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", line_piece, "431",
     "/problems/headers_too_large"},
    {"GET /healthz HTTP/1.1\r\nHost: x\r\n", header_lines, "431",
     "/problems/headers_too_large"},
  };
  for (const auto& c : cases) {
    auto [sent, answer] = send_endless_head(s.port(), c.head, c.piece, cap);
    EXPECT_EQ(answer.rfind("HTTP/1.1 " + c.status, 0), 0u)
      << c.head << ": " << answer.substr(0, 400);
    EXPECT_NE(answer.find(c.type), std::string::npos)
      << answer.substr(0, 400);
    EXPECT_NE(answer.find("Connection: close"), std::string::npos)
      << answer.substr(0, 400);
    EXPECT_LT(sent, cap) << c.head;
    int status = 0;
    get(s, "/healthz", &status);
    EXPECT_EQ(status, 200) << "after " << c.head;
  }
  // A request line ending just past the bound (its line end within it)
  // is answered alike.
  int fd = connect_to(s.port());
  ASSERT_GE(fd, 0);
  std::string line = "GET /" + std::string(8177, 'x') + " HTTP/1.1\r\n";
  ASSERT_EQ(line.size(), 8193u);
  auto request = line + "Host: x\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  auto answer = read_to_end(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 414", 0), 0u) << answer.substr(0, 400);
  EXPECT_NE(answer.find("/problems/uri_too_long"), std::string::npos)
    << answer.substr(0, 400);
  // One header line over httplib's own bound (8192 bytes): 400, and the
  // connection ends rather than reading the rest of the head as requests.
  fd = connect_to(s.port());
  ASSERT_GE(fd, 0);
  request = "GET /healthz HTTP/1.1\r\nX-Long: " + std::string(9000, 'l')
            + "\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  answer = read_to_end(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer.substr(0, 400);
  EXPECT_EQ(answer.find("HTTP/1.1", 1), std::string::npos)
    << answer.substr(0, 600);
  // Heads within the bounds are served as before, on one connection.
  auto c = s.client();
  auto big = c.Get("/healthz", {{"X-Token", std::string(7000, 't')}});
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 200);
  auto again = c.Get(("/healthz?q=" + std::string(4000, 'q')).c_str());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST(Serve, SecondServerOnTheStoreNamesTheHolder) {
  test::temp_dir dir;
  auto db = dir.str() + "/db";
  server s{db};
  ASSERT_TRUE(s.ok());
  cadre_process second{{"--db", db, "serve", "--listen", "127.0.0.1:0"},
                       dir.str() + "/second.err"};
  auto st = second.wait_until(clock_type::now() + 60s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 1);
  auto err = second.stderr_text();
  EXPECT_NE(err.find("is used by cadre serve (pid "
                     + std::to_string(s.proc().pid()) + ", " + s.url()
                     + "); use --server " + s.url()),
            std::string::npos)
    << err;
  cadre_process run{{"--db", db, "run", source_path("examples/hello.yaml"),
                     "--input", R"({"name": "Ada"})"},
                    dir.str() + "/run.err"};
  st = run.wait_until(clock_type::now() + 60s);
  ASSERT_TRUE(st.has_value());
  EXPECT_NE(run.stderr_text().find("use --server " + s.url()),
            std::string::npos)
    << run.stderr_text();
  // Without tokens, only loopback.
  cadre_process open{{"--db", dir.str() + "/db2", "serve", "--listen",
                      "0.0.0.0:0"},
                     dir.str() + "/open.err"};
  st = open.wait_until(clock_type::now() + 60s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 2);
  EXPECT_NE(open.stderr_text().find("--insecure"), std::string::npos);
}

TEST(Serve, TokensAndScopesGuardEveryRoute) {
  test::temp_dir dir;
  server s{dir.str() + "/db",
           {},
           {"CADRE_API_TOKENS=reader-secret-1:read,writer-secret-2:read+write,"
            "admin-secret-3"}};
  ASSERT_TRUE(s.ok());
  auto call = [&](const std::string& method, const std::string& path,
                  const std::string& token, const std::string& body = "") {
    auto c = s.client();
    if (!token.empty())
      c.set_bearer_token_auth(token.c_str());
    httplib::Request req;
    req.method = method;
    req.path = path;
    if (!body.empty()) {
      req.body = body;
      req.set_header("Content-Type", "application/yaml");
    }
    auto r = c.send(req);
    EXPECT_TRUE(r) << method << " " << path;
    return r ? r->status : -1;
  };
  EXPECT_EQ(call("GET", "/healthz", ""), 200);
  EXPECT_EQ(call("GET", "/readyz", ""), 200);
  {
    auto c = s.client();
    auto r = c.Get("/v1/executions");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
    EXPECT_EQ(body_of(r)["type"], "/problems/unauthorized");
  }
  EXPECT_EQ(call("GET", "/v1/executions", "not-a-token"), 401);
  EXPECT_EQ(call("GET", "/v1/executions", "reader-secret-1"), 200);
  EXPECT_EQ(call("GET", "/metrics", "reader-secret-1"), 200);
  auto wf = yaml_of("examples/hello.yaml");
  EXPECT_EQ(call("PUT", "/v1/workflows/hello", "reader-secret-1", wf), 403);
  EXPECT_EQ(call("PUT", "/v1/workflows/hello", "writer-secret-2", wf), 201);
  EXPECT_EQ(call("DELETE", "/v1/workflows/hello", "writer-secret-2"), 403);
  EXPECT_EQ(call("DELETE", "/v1/workflows/hello", "admin-secret-3"), 204);
  // No token text reaches the server's output.
  auto err = s.proc().stderr_text();
  for (auto secret : {"reader-secret-1", "writer-secret-2", "admin-secret-3"})
    EXPECT_EQ(err.find(secret), std::string::npos) << secret;
}

TEST(Serve, RateLimitAnswers429WithRetryAfter) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  // One request every 100 s after a burst of 3: the fourth is refused.
  std::ofstream{cfg} << "server:\n  rate_limit: {per_second: 0.01, burst: 3}\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  int status = 0;
  for (int i = 0; i < 3; ++i) {
    get(s, "/v1/tools", &status);
    EXPECT_EQ(status, 200) << i;
  }
  auto c = s.client();
  auto r = c.Get("/v1/tools");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(body_of(r)["type"], "/problems/rate_limited");
  auto retry = std::stoi(r->get_header_value("Retry-After"));
  EXPECT_GE(retry, 1);
  EXPECT_LE(retry, 100);
  // Probes are not limited.
  get(s, "/healthz", &status);
  EXPECT_EQ(status, 200);
}

TEST(Serve, EmbeddedCommandsLeaveOtherExecutionsAlone) {
  test::temp_dir dir;
  auto db = dir.str() + "/db";
  auto wf = dir.str() + "/slow.yaml";
  std::ofstream{wf} << chain_yaml;
  // An execution left unfinished by a kill -9 mid-run.
  std::string id;
  {
    cadre_process p{{"--db", db, "--json", "run", wf}, dir.str() + "/p.err"};
    std::string line;
    while (p.read_line(line, clock_type::now() + 60s)) {
      auto j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("type", "") == "task_completed") {
        id = j.value("execution_id", std::string{});
        break;
      }
    }
    p.kill_now();
  }
  ASSERT_FALSE(id.empty());
  auto events_of = [&](const std::string& which) {
    cadre_process e{{"--db", db, "--json", "events", which},
                    dir.str() + "/e.err"};
    return e.read_all(clock_type::now() + 60s).size();
  };
  auto before = events_of(id);
  // Another workflow, embedded: it runs only its own execution.
  cadre_process run{{"--db", db, "run", source_path("examples/hello.yaml"),
                     "--input", R"({"name": "Ada"})"},
                    dir.str() + "/run.err"};
  auto st = run.wait_until(clock_type::now() + 60s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 0) << run.stderr_text();
  EXPECT_EQ(events_of(id), before);
  // `cadre serve` resumes it.
  server s{db};
  ASSERT_TRUE(s.ok());
  auto rest = read_stream(s, "/v1/executions/" + id + "/events", {},
                          [](const sse_event& ev) { return ev.type == "end"; });
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(json::parse(rest.back().data)["status"], "completed");
}

TEST(Serve, TheCliIsAClientOfTheServer) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  auto human = dir.str() + "/approval.yaml";
  std::ofstream{human} << human_yaml;
  struct result {
    int code = -1;
    std::vector<std::string> out;
    std::string err;
  };
  int n = 0;
  auto cli = [&](std::vector<std::string> args,
                 std::vector<std::string> env = {}) {
    if (env.empty())
      args.insert(args.begin(), {"--server", s.url()});
    auto err = dir.str() + "/cli" + std::to_string(n++) + ".err";
    cadre_process p{args, err, env};
    result r;
    r.out = p.read_all(clock_type::now() + 60s);
    auto st = p.wait_until(clock_type::now() + 60s);
    EXPECT_TRUE(st.has_value());
    r.code = st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
    r.err = p.stderr_text();
    return r;
  };
  auto joined = [](const std::vector<std::string>& lines) {
    std::string all;
    for (auto& l : lines)
      all += l + "\n";
    return all;
  };
  auto hello = cli({"run", source_path("examples/hello.yaml"), "--input",
                    R"({"name": "Ada", "shout": true})"});
  EXPECT_EQ(hello.code, 0) << hello.err;
  EXPECT_NE(joined(hello.out).find("HELLO, ADA!"), std::string::npos)
    << joined(hello.out);
  // A located error in the file stays local: exit 2, file:line.
  auto broken = dir.str() + "/broken.yaml";
  std::ofstream{broken} << "name: broken\ntasks:\n  - id: a\n    tool: nope\n";
  auto bad = cli({"run", broken});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("broken.yaml:"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("/tasks/0/tool"), std::string::npos) << bad.err;
  // A person's task: run waits (3), input answers, the execution ends.
  auto waiting = cli({"--json", "run", human});
  EXPECT_EQ(waiting.code, 3) << waiting.err;
  std::string id;
  for (auto& line : waiting.out) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("execution_id"))
      id = j["execution_id"].get<std::string>();
  }
  ASSERT_FALSE(id.empty()) << joined(waiting.out);
  auto listed = cli({"--json", "executions", "--status", "waiting"});
  EXPECT_EQ(listed.code, 0) << listed.err;
  EXPECT_NE(joined(listed.out).find(id), std::string::npos);
  auto answered = cli({"input", id, "ask", R"({"ok": true})"});
  EXPECT_EQ(answered.code, 0) << answered.err;
  // The same through CADRE_SERVER: the execution's log, ending completed.
  auto events = cli({"--json", "events", id}, {"CADRE_SERVER=" + s.url()});
  EXPECT_EQ(events.code, 0) << events.err;
  ASSERT_FALSE(events.out.empty());
  EXPECT_EQ(json::parse(events.out.back())["type"], "execution_completed");
  auto tools = cli({"tools"});
  EXPECT_EQ(tools.code, 0) << tools.err;
  EXPECT_NE(joined(tools.out).find("echo"), std::string::npos);
  auto tree = cli({"--json", "tree"});
  EXPECT_EQ(tree.code, 0) << tree.err;
  EXPECT_TRUE(json::parse(joined(tree.out), nullptr, false).is_object());
  auto resume = cli({"resume"});
  EXPECT_EQ(resume.code, 2);
}

TEST(Serve, TlsServesHttpsWithTheConfiguredCertificate) {
  test::temp_dir dir;
  auto cert = dir.str() + "/cert.pem";
  auto key = dir.str() + "/key.pem";
  auto cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
             "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "
             + key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto cfg = dir.str() + "/cadre.yaml";
  std::ofstream{cfg} << "server:\n  tls: {cert_file: " << cert
                     << ", key_file: " << key << "}\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.url().rfind("https://127.0.0.1:", 0), 0u) << s.url();
  httplib::SSLClient tls{"127.0.0.1", s.port()};
  tls.set_ca_cert_path(cert.c_str());
  tls.enable_server_certificate_verification(true);
  auto r = tls.Get("/healthz");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  // Over TLS too a head is bounded (the connection's reader is cadre's).
  auto big = tls.Get("/healthz", {{"X-Big", std::string(100 << 10, 'x')}});
  ASSERT_TRUE(big) << httplib::to_string(big.error());
  EXPECT_EQ(big->status, 431) << big->body;
  EXPECT_NE(big->body.find("/problems/headers_too_large"), std::string::npos);
  auto next = tls.Get("/healthz");
  ASSERT_TRUE(next) << httplib::to_string(next.error());
  EXPECT_EQ(next->status, 200);
  // Plain HTTP on the same port gets no answer.
  auto plain = s.client();
  plain.set_read_timeout(5, 0);
  auto p = plain.Get("/healthz");
  EXPECT_TRUE(!p || p->status != 200);
  // A certificate that cannot be read stops the server with the key named.
  std::ofstream{cfg, std::ios::trunc}
    << "server:\n  tls: {cert_file: " << dir.str()
    << "/missing.pem, key_file: " << key << "}\n";
  cadre_process bad{{"--db", dir.str() + "/db2", "--config", cfg, "serve",
                     "--listen", "127.0.0.1:0"},
                    dir.str() + "/bad.err"};
  auto st = bad.wait_until(clock_type::now() + 60s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 2);
  EXPECT_NE(bad.stderr_text().find("server.tls"), std::string::npos)
    << bad.stderr_text();
}

TEST(Serve, CorsAnswersConfiguredOriginsOnly) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  std::ofstream{cfg} << "server:\n  cors_origins: [https://app.example]\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  auto c = s.client();
  httplib::Request pre;
  pre.method = "OPTIONS";
  pre.path = "/v1/executions";
  pre.set_header("Origin", "https://app.example");
  pre.set_header("Access-Control-Request-Method", "POST");
  auto r = c.send(pre);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"),
            "https://app.example");
  EXPECT_NE(r->get_header_value("Access-Control-Allow-Headers")
              .find("Authorization"),
            std::string::npos);
  auto other = c.Get("/healthz", {{"Origin", "https://evil.example"}});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  EXPECT_FALSE(other->has_header("Access-Control-Allow-Origin"));
}

// A preflight with a body (no browser sends one, and httplib reads none)
// is answered and ends the connection, so its body is never read as a next
// request; a declared body over the limit is refused as on any route.
TEST(Serve, APreflightWithABodyIsAnsweredAndEndsTheConnection) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  std::ofstream{cfg} << "server:\n  cors_origins: [https://app.example]\n"
                        "  max_body_bytes: 1000\n  read_timeout: 3s\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  const std::string preflight = "OPTIONS /v1/executions HTTP/1.1\r\n"
                                "Host: x\r\nOrigin: https://app.example\r\n"
                                "Access-Control-Request-Method: POST\r\n";
  // The body is a request of its own: read as one, it would be answered.
  const std::string inner = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  int fd = connect_to(s.port());
  ASSERT_GE(fd, 0);
  auto request = preflight + "Content-Length: "
                 + std::to_string(inner.size()) + "\r\n\r\n" + inner;
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  auto answer = read_to_end(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 204", 0), 0u) << answer;
  EXPECT_NE(answer.find("Access-Control-Allow-Origin: https://app.example"),
            std::string::npos)
    << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  EXPECT_EQ(answer.find("HTTP/1.1", 1), std::string::npos)
    << "the body was answered as a request: " << answer;
  // Declared over server.max_body_bytes: 413, as on any route.
  fd = connect_to(s.port());
  ASSERT_GE(fd, 0);
  request = preflight + "Content-Length: 52428800\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  answer = read_to_end(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_NE(answer.find("/problems/too_large"), std::string::npos) << answer;
  // Chunked without end: answered, and the connection ends rather than
  // reading the chunks as requests.
  auto [sent, endless] = send_endless_body(
    s.port(), preflight + "Transfer-Encoding: chunked\r\n\r\n", true,
    size_t{64} << 20);
  EXPECT_EQ(endless.rfind("HTTP/1.1 204", 0), 0u) << endless.substr(0, 400);
  EXPECT_EQ(endless.find("HTTP/1.1", 1), std::string::npos)
    << endless.substr(0, 400);
  EXPECT_LT(sent, size_t{64} << 20);
  int status = 0;
  get(s, "/healthz", &status);
  EXPECT_EQ(status, 200);
}

TEST(Serve, SlowClientsAreDisconnectedAndRequestsLogged) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  std::ofstream{cfg} << "server:\n  read_timeout: 1s\n";
  server s{dir.str() + "/db", {"--config", cfg, "--log-format", "json"}};
  ASSERT_TRUE(s.ok());
  // Half a request line, then nothing: the server hangs up.
  int fd = connect_to(s.port());
  ASSERT_GE(fd, 0);
  std::string partial = "GET /healthz HT";
  ::send(fd, partial.data(), partial.size(), 0);
  char buf[256];
  auto n = ::recv(fd, buf, sizeof(buf), 0);
  ::close(fd);
  EXPECT_LE(n, 0) << "the server answered half a request";
  // Each request has an id, echoed and in its log line.
  auto c = s.client();
  auto r = c.Get("/healthz", {{"X-Request-Id", "test-req-42"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("X-Request-Id"), "test-req-42");
  bool logged = false;
  for (int i = 0; i < 100 && !logged; ++i) {
    std::istringstream lines{s.proc().stderr_text()};
    std::string line;
    while (std::getline(lines, line)) {
      auto j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("request_id", "") == "test-req-42") {
        EXPECT_EQ(j["msg"], "http request");
        EXPECT_EQ(j["route"], "/healthz");
        EXPECT_EQ(j["status"], 200);
        EXPECT_TRUE(j["duration_us"].is_number_integer());
        logged = true;
      }
    }
    if (!logged)
      std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(logged) << s.proc().stderr_text();
}

TEST(Serve, AgentTokensStreamWithoutIds) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(put_workflow(s, "agent-demo", yaml_of("examples/agent.yaml")),
            201);
  auto c = s.client();
  std::vector<sse_event> events;
  sse_parser parser;
  // Submit and stream in one call.
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/executions";
  req.set_header("Accept", "text/event-stream");
  req.set_header("Content-Type", "application/json");
  req.body
    = json{{"workflow", "agent-demo"}, {"input", {{"topic", "actors"}}}}.dump();
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    parser.feed(data, n, events);
    return true;
  };
  auto r = c.send(req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->get_header_value("X-Execution-Id").empty());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, "end");
  size_t tokens = 0;
  for (auto& ev : events)
    if (ev.type == "token") {
      ++tokens;
      EXPECT_TRUE(ev.id.empty());
      auto j = json::parse(ev.data);
      EXPECT_TRUE(j.contains("text"));
      EXPECT_FALSE(j.value("execution_id", std::string{}).empty());
    }
  EXPECT_GT(tokens, 0u);
}


TEST(Serve, ConnectionsPastThePoolAndQueueAreAnswered503) {
  test::temp_dir dir;
  auto cfg = dir.str() + "/cadre.yaml";
  // A short keep-alive: a stream notices its closed client at its next write.
  std::ofstream{cfg} << "server:\n  threads: 2\n  max_queued_connections: 1\n"
                        "  sse: {keepalive: 200ms}\n";
  server s{dir.str() + "/db", {"--config", cfg}};
  ASSERT_TRUE(s.ok());
  // Two streams hold both threads.
  std::string stream = "GET /v1/events HTTP/1.1\r\nHost: x\r\n"
                       "Accept: text/event-stream\r\n\r\n";
  int a = connect_to(s.port());
  int b = connect_to(s.port());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(exchange_head(a, stream).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(exchange_head(b, stream).rfind("HTTP/1.1 200", 0), 0u);
  std::string probe = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  // The third waits in the queue; the fourth finds it full.
  int queued = connect_to(s.port());
  ASSERT_GE(queued, 0);
  ::send(queued, probe.data(), probe.size(), 0);
  int refused = connect_to(s.port());
  ASSERT_GE(refused, 0);
  auto head = exchange_head(refused, probe);
  EXPECT_EQ(head.rfind("HTTP/1.1 503", 0), 0u) << head;
  EXPECT_NE(head.find("Retry-After: 1"), std::string::npos) << head;
  ::close(refused);
  // Once a stream ends, the queued request is served.
  ::close(a);
  std::string answer;
  char c;
  while (answer.find("\r\n\r\n") == std::string::npos
         && ::recv(queued, &c, 1, 0) == 1)
    answer += c;
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  ::close(queued);
  ::close(b);
}

TEST(Serve, SigtermLetsRequestsInFlightFinish) {
  test::temp_dir dir;
  server s{dir.str() + "/db"};
  ASSERT_TRUE(s.ok());
  int status = 0;
  json answer;
  std::thread call{[&] {
    // Long enough for the polls below to see it busy on a loaded machine.
    answer = post(s, "/v1/tools/sleep/invoke",
                  json{{"input", {{"ms", 3000}}}}, &status);
  }};
  // Until the call runs in the sleep tool's pool.
  bool busy = false;
  for (int i = 0; i < 1000 && !busy; ++i) {
    auto tools = get(s, "/v1/tools");
    for (auto& t : tools["tools"])
      busy = busy || (t["name"] == "sleep" && t.value("busy", 0) > 0);
    if (!busy)
      std::this_thread::sleep_for(5ms);
  }
  if (!busy) {
    call.join(); // a failed assertion must not leave the thread joinable
    FAIL() << "the sleep call never showed busy in GET /v1/tools";
  }
  s.proc().signal(SIGTERM);
  call.join();
  EXPECT_EQ(status, 200) << answer.dump();
  EXPECT_TRUE(answer.contains("output")) << answer.dump();
  auto st = s.proc().wait_until(clock_type::now() + 60s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
}
