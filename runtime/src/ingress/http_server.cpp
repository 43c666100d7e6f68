#include "ingress/server_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <utility>

#include <sys/socket.h>

#include "cadre/actors/metrics.hpp"
#include "ingress/bounded_head.hpp"
#include "ingress/bounded_pool.hpp"
#include "ingress/openapi.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::runtime {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

request_context& current_request() {
  thread_local request_context current;
  return current;
}

bool valid_request_id(const std::string& id) {
  if (id.empty() || id.size() > 64)
    return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_'
           || c == '-';
  });
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[24];
  std::snprintf(buf, sizeof(buf), "r-%012llx",
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return buf;
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

void send_problem(httplib::Response& res, const problem& p) {
  res.status = p.status;
  if (p.retry_after_s > 0)
    res.set_header("Retry-After", std::to_string(p.retry_after_s));
  if (p.status == 401)
    res.set_header("WWW-Authenticate", "Bearer");
  res.set_content(p.to_json(current_request().id).dump(-1, ' ', false,
                                             json::error_handler_t::replace),
                  "application/problem+json");
}

// The connection ends once this request's answer is written, whatever
// the answer (bounded_head.cpp's connection loop): a body left unread
// would be read as the next request.
void end_connection_after(httplib::Response& res) {
  if (res.get_header_value("Connection") != "close")
    res.set_header("Connection", "close");
  current_request().end_connection = true;
}

void send_problem_closing(httplib::Response& res, const problem& p) {
  send_problem(res, p);
  end_connection_after(res);
}

problem too_large_problem(uint64_t limit, const char* setting,
                          uint64_t declared) {
  return make_problem(413, "too_large",
                      (declared > 0 ? "the body has " + std::to_string(declared)
                                        + " bytes; the limit is "
                                    : std::string{"the body is over "})
                        + std::to_string(limit)
                        + (declared > 0 ? " (" : " bytes (") + setting + ")");
}

bool wants_stream(const httplib::Request& req) {
  return req.get_header_value("Accept").find("text/event-stream")
         != std::string::npos;
}

/// A query parameter as an unsigned number; `fallback` when absent.
expected<uint64_t> query_number(const httplib::Request& req,
                                const std::string& name, uint64_t fallback,
                                uint64_t max) {
  if (!req.has_param(name.c_str()))
    return fallback;
  auto text = req.get_param_value(name.c_str());
  char* end = nullptr;
  errno = 0;
  auto x = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || text[0] == '-')
    return make_error(errc::invalid_input,
                      "query parameter " + name
                        + ": expected a non-negative integer, got '"
                        + text.substr(0, 40) + "'");
  if (x > max)
    return make_error(errc::invalid_input,
                      "query parameter " + name + ": at most "
                        + std::to_string(max) + ", got " + text);
  return x;
}


// -- the server ----------------------------------------------------------------

void http_server::impl::install() {
  srv->new_task_queue = [this] {
    return new bounded_pool(opts.threads, opts.max_queued_connections,
                            opts.drain_timeout, drain_timeout_passed);
  };
  srv->set_read_timeout(opts.read_timeout);
  srv->set_write_timeout(opts.write_timeout);
  srv->set_keep_alive_timeout(5);
  // httplib closes a connection after 5 requests by default, so busy
  // clients reconnect all the time; an idle one still goes after 5 s.
  srv->set_keep_alive_max_count(1000);
  // httplib writes a response's headers and body in separate send()s; with
  // Nagle's algorithm on (httplib's default) the body then waits for the
  // client's delayed ACK, some 40 ms on Linux, on every request
  // (bench/README.md, "HTTP service").
  srv->set_tcp_nodelay(true);
  // No limit of httplib's: it bounds a declared Content-Length only (a
  // chunked body it reads without bound) and is one for every route.
  // Every body is read through read_body instead, at its route's limit
  // (body_limit), and a declared Content-Length over it is refused before
  // the body is read (middleware).
  srv->set_payload_max_length(std::numeric_limits<size_t>::max());
  middleware();
  probes();
  workflows();
  executions();
  events();
  replay();
  tools_agents_tree();
  schedules();
  nodes();
  // A body sent to no route is read as a route's would be (httplib would
  // hold it whole), then answered 404 or 405 (error handler).
  auto unrouted = [this](const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& body) {
    if (read_whole(req, res, body, [](const char*, size_t) {}))
      res.status = 404;
  };
  srv->Post(".*", unrouted);
  srv->Put(".*", unrouted);
  srv->Patch(".*", unrouted);
  srv->Delete(".*", unrouted);
}

bool http_server::impl::read_whole(
  const httplib::Request& req, httplib::Response& res,
  const httplib::ContentReader& body,
  const std::function<void(const char*, size_t)>& sink) {
  if (req.is_multipart_form_data()) {
    send_problem_closing(res, make_problem(415, "unsupported_media_type",
                                           "a multipart/form-data body is "
                                           "not read; send JSON or YAML"));
    return false;
  }
  auto [limit, setting] = body_limit(req.method, req.path);
  uint64_t received = 0;
  switch (read_body(body, limit, received, sink)) {
    case body_end::whole:
      return true;
    case body_end::too_large:
      send_problem_closing(res, too_large_problem(limit, setting));
      return false;
    case body_end::cut_short:
      break;
  }
  send_problem_closing(res, make_problem(400, "bad_request",
                                         "the request body could not be "
                                         "read: it stopped after "
                                           + std::to_string(received)
                                           + " bytes (the client closed the "
                                             "connection, sent nothing for "
                                             "server.read_timeout, or broke "
                                             "its chunked encoding)"));
  return false;
}

bool http_server::impl::route_to_owner(const httplib::Request& req,
                                       httplib::Response& res) {
  static const std::string prefix = "/v1/executions/";
  // An agent of an execution ("<execution>/<agent or task>") lives where
  // its turns run: on the execution's owner, whose disk has its log. An
  // agent of scope `agent` (no slash) has a log on every node it ran on.
  static const std::string agents = "/v1/agents/";
  if (n.node_name().empty())
    return false;
  bool agent = req.path.rfind(agents, 0) == 0;
  if (!agent && req.path.rfind(prefix, 0) != 0)
    return false;
  auto rest = req.path.substr(agent ? agents.size() : prefix.size());
  auto slash = rest.find('/');
  if (agent && slash == std::string::npos)
    return false;
  auto id = rest.substr(0, slash);
  auto owner = execution_owner(id);
  if (owner.empty() || owner == n.node_name())
    return false;
  current_request().route = agent ? "/v1/agents/{agent_id} (owner)"
                                  : "/v1/executions/{id} (owner)";
  std::string state = "unknown to this node";
  for (const auto& m : n.nodes()) {
    if (m.value("name", std::string{}) != owner)
      continue;
    state = m.value("state", std::string{});
    auto url = m.value("url", std::string{});
    if (state == "up" && !url.empty()) {
      // 307 keeps the method and the body: a client that follows it asks
      // the owner the same question.
      res.status = 307;
      res.set_header("Location", url + req.target);
      send_json(res, 307, json{{"owner", owner}, {"location", url + req.target}});
      return true;
    }
  }
  auto p = make_problem(
    503, "owner_unavailable",
    agent ? "agent " + rest + " lives on node " + owner + ", which is "
              + state + ": its log is on that node's disk"
          : "execution " + id + " is owned by node " + owner + ", which is "
              + state
              + ": its log is on that node's disk; it resumes when the "
                "node is back");
  p.retry_after_s = 5;
  send_problem(res, p);
  return true;
}

void http_server::impl::middleware() {
  using answer = httplib::Server::HandlerResponse;
  // A declared body over the route's limit is refused before it is read.
  auto declared_too_large = [this](const httplib::Request& req,
                                   httplib::Response& res) {
    if (!req.has_header("Content-Length"))
      return false;
    auto declared = std::strtoull(
      req.get_header_value("Content-Length").c_str(), nullptr, 10);
    auto [limit, setting] = body_limit(req.method, req.path);
    if (limit == 0 || declared <= limit)
      return false;
    send_problem_closing(res, too_large_problem(limit, setting, declared));
    return true;
  };
  auto before = [this, declared_too_large](const httplib::Request& req,
                                           httplib::Response& res) -> answer {
    current_request() = request_context{};
    current_request().start = steady_clock::now();
    auto given = req.get_header_value("X-Request-Id");
    current_request().id = valid_request_id(given) ? given : new_request_id();
    res.set_header("X-Request-Id", current_request().id);
    auto origin = req.get_header_value("Origin");
    if (!origin.empty()) {
      auto& allowed = opts.cors_origins;
      if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end()
          || std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) {
        res.set_header("Access-Control-Allow-Origin", origin);
        res.set_header("Vary", "Origin");
        res.set_header("Access-Control-Expose-Headers",
                       "X-Request-Id, X-Execution-Id, Retry-After");
        if (req.method == "OPTIONS") {
          // A preflight's body, which no browser sends, is bounded as any
          // other; httplib reads none, so the connection ends after the
          // answer (set_pre_routing_handler below).
          if (declared_too_large(req, res))
            return httplib::Server::HandlerResponse::Handled;
          res.set_header("Access-Control-Allow-Methods",
                         "GET, POST, PUT, DELETE, OPTIONS");
          res.set_header("Access-Control-Allow-Headers",
                         "Authorization, Content-Type, Last-Event-ID, "
                         "X-Request-Id");
          res.set_header("Access-Control-Max-Age", "600");
          res.status = 204;
          current_request().route = "preflight";
          return httplib::Server::HandlerResponse::Handled;
        }
      }
    }
    if (on_overflow_lane()) {
      auto p = make_problem(503, "overloaded",
                            "every connection thread is busy and the queue "
                            "is full (server.threads, "
                            "server.max_queued_connections)");
      p.retry_after_s = 1;
      res.set_header("Connection", "close");
      send_problem(res, p);
      return httplib::Server::HandlerResponse::Handled;
    }
    bool probe = req.path == "/healthz" || req.path == "/readyz";
    if (draining && !probe) {
      auto p = make_problem(503, "unavailable", "the server is shutting down");
      p.retry_after_s = 1;
      res.set_header("Connection", "close");
      send_problem(res, p);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (auth && auth->enabled()) {
      auto needed = required_scope(req.method, req.path);
      if (needed != scope::none) {
        auto who = auth->authenticate(req.get_header_value("Authorization"));
        if (!who) {
          send_problem(res, problem_of(who.error()));
          return httplib::Server::HandlerResponse::Handled;
        }
        if (auto ok = authenticator::authorize(*who, needed); !ok) {
          send_problem(res, problem_of(ok.error()));
          return httplib::Server::HandlerResponse::Handled;
        }
        current_request().principal = who->name;
      }
    }
    if (limiter && !probe) {
      auto key = current_request().principal.empty() ? "addr:" + req.remote_addr
                                           : "token:" + current_request().principal;
      if (auto wait = limiter->try_acquire(key, steady_clock::now())) {
        auto p = make_problem(429, "rate_limited",
                              "over the request rate of "
                                + (current_request().principal.empty()
                                     ? "this address"
                                     : "token " + current_request().principal)
                                + " (server.rate_limit)");
        p.retry_after_s = static_cast<int>((wait->count() + 999) / 1000);
        send_problem(res, p);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (route_to_owner(req, res))
      return httplib::Server::HandlerResponse::Handled;
    if (req.method == "PRI") {
      // Served by no route, and httplib would read its body whole.
      res.status = 404; // the error handler says 404 or 405
      return httplib::Server::HandlerResponse::Handled;
    }
    if (declared_too_large(req, res))
      return httplib::Server::HandlerResponse::Handled;
    return httplib::Server::HandlerResponse::Unhandled;
  };
  srv->set_pre_routing_handler([before](const httplib::Request& req,
                                        httplib::Response& res) {
    auto handled = before(req, res);
    // A body left unread (answered before it, or of a method httplib reads
    // no body of, or a DELETE's without Content-Length) would be read as
    // the next request, its request line without bound: the connection
    // ends after the answer.
    bool has_body = req.has_header("Transfer-Encoding")
                    || req.get_header_value<uint64_t>("Content-Length") > 0;
    bool read = req.method == "POST" || req.method == "PUT"
                || req.method == "PATCH"
                || (req.method == "DELETE" && req.has_header("Content-Length"));
    if (has_body && (handled == answer::Handled || !read))
      end_connection_after(res);
    return handled;
  });
  srv->set_error_handler(httplib::Server::HandlerWithResponse{
    [this](const httplib::Request& req, httplib::Response& res) {
    // A head past its bound: httplib has read no more of it (bounded_head),
    // and the connection ends after this answer. A request line just past
    // httplib's own bound (its line end within ours) is httplib's 414.
    auto code = std::exchange(current_request().head_too_large, 0);
    if (code == 0 && res.status == 414)
      code = 414;
    if (code != 0) {
      send_problem(res, code == 414
                          ? make_problem(414, "uri_too_long",
                                         "the request line is over "
                                           + std::to_string(
                                             max_request_line_bytes)
                                           + " bytes")
                          : make_problem(431, "headers_too_large",
                                         "the request's head (request line "
                                         "and headers) is over "
                                           + std::to_string(max_head_bytes)
                                           + " bytes"));
      end_connection_after(res);
      return httplib::Server::HandlerResponse::Handled;
    }
    // Handlers that answered an error wrote their own problem document.
    if (!res.body.empty())
      return httplib::Server::HandlerResponse::Unhandled;
    auto methods = allowed(req.path);
    bool known_method
      = std::find(methods.begin(), methods.end(), req.method) != methods.end();
    if (res.status == 404 || (!methods.empty() && !known_method)) {
      if (!methods.empty()) {
        std::string allow;
        for (auto& m : methods)
          allow += (allow.empty() ? "" : ", ") + m;
        res.set_header("Allow", allow);
        send_problem(res, make_problem(405, "method_not_allowed",
                                       req.method + " " + req.path
                                         + " is not served; allowed: "
                                         + allow));
        return httplib::Server::HandlerResponse::Handled;
      }
      send_problem(res, make_problem(404, "not_found",
                                     "no route " + req.method + " "
                                       + req.path));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (res.status == 413) {
      send_problem(res, too_large_problem(opts.max_body_bytes,
                                          "server.max_body_bytes"));
      return httplib::Server::HandlerResponse::Handled;
    }
    // httplib's own answer to a request it could not read (a header line
    // over its 8192 bytes): where the next request starts is unknown.
    send_problem_closing(res, make_problem(res.status,
                                           res.status >= 500 ? "internal"
                                                             : "bad_request",
                                           "the request could not be read"));
    return httplib::Server::HandlerResponse::Handled;
  }});
  srv->set_logger([this](const httplib::Request& req,
                         const httplib::Response& res) {
    auto elapsed = std::chrono::duration<double>(steady_clock::now()
                                                 - current_request().start)
                     .count();
    metrics.observe(current_request().route, req.method, res.status, elapsed);
    log_request(current_request().id, req.method, req.path, current_request().route, res.status,
                elapsed, req.remote_addr, current_request().principal);
  });
}

// -- probes, metrics, schema ----------------------------------------------------

void http_server::impl::probes() {
  add("GET", "/healthz", "/healthz",
      [](const httplib::Request&, httplib::Response& res) {
        send_json(res, 200, json{{"status", "ok"}});
      });
  add("GET", "/readyz", "/readyz",
      [this](const httplib::Request&, httplib::Response& res) {
        if (draining) {
          auto p = make_problem(503, "unavailable", "the server is draining");
          send_problem(res, p);
          return;
        }
        if (!n.running()) {
          auto p = make_problem(503, "unavailable",
                                "the node's supervision tree is not running");
          p.retry_after_s = 1;
          send_problem(res, p);
          return;
        }
        send_json(res, 200, json{{"status", "ready"}});
      });
  add("GET", "/metrics", "/metrics",
      [this](const httplib::Request&, httplib::Response& res) {
        std::string text = n.metrics().prometheus();
        text += metrics.prometheus();
        // Gauges read at scrape time.
        std::map<std::string, size_t> by_status;
        for (auto s : {"running", "waiting", "completed", "failed",
                       "cancelled"})
          by_status[s] = 0;
        if (auto all = ask<std::vector<execution_info>>(n.store(), list_atom_v,
                                                        execution_filter{}))
          for (auto& x : *all)
            ++by_status[x.status];
        text += "# HELP cadre_executions Executions in the store by status\n"
                "# TYPE cadre_executions gauge\n";
        for (auto& [s, count] : by_status)
          text += "cadre_executions{status=\"" + s + "\"} "
                  + std::to_string(count) + "\n";
        text += "# HELP cadre_tool_pool_queue_depth Calls waiting for a "
                "worker, by tool\n# TYPE cadre_tool_pool_queue_depth gauge\n";
        for (auto& d : n.describe_tools())
          if (d.contains("name") && d.contains("queued"))
            text += "cadre_tool_pool_queue_depth{tool=\""
                    + d["name"].get<std::string>() + "\"} "
                    + dump_json(d["queued"]) + "\n";
        if (!n.node_name().empty()) {
          std::map<std::string, size_t> members;
          for (auto s : {"joining", "up", "suspect", "down", "left"})
            members[s] = 0;
          for (const auto& m : n.nodes())
            ++members[m.value("state", std::string{"unknown"})];
          text += "# HELP cadre_cluster_members Members of the cluster by "
                  "state, as this node sees them (itself included)\n"
                  "# TYPE cadre_cluster_members gauge\n";
          for (auto& [s, count] : members)
            text += "cadre_cluster_members{state=\"" + s + "\"} "
                    + std::to_string(count) + "\n";
        }
        {
          std::lock_guard<std::mutex> guard{streams_mtx};
          text += "# HELP cadre_sse_streams Open event streams\n"
                  "# TYPE cadre_sse_streams gauge\ncadre_sse_streams "
                  + std::to_string(streams.size()) + "\n";
        }
        res.set_content(text, "text/plain; version=0.0.4");
      });
  add("GET", "/openapi.json", "/openapi.json",
      [](const httplib::Request&, httplib::Response& res) {
        res.set_content(openapi_document(), "application/json");
      });
}


// -- lifecycle ------------------------------------------------------------------

http_server::http_server(node& n, server_options opts)
  : impl_(std::make_unique<impl>(n, std::move(opts))) {
}

http_server::~http_server() {
  shutdown();
}

expected<int> http_server::bind() {
  auto& st = *impl_;
  auto auth = parse_auth_options(st.n.config().server,
                                 std::getenv("CADRE_API_TOKENS"));
  if (!auth)
    return std::move(auth.error());
  st.auth = std::make_unique<authenticator>(std::move(*auth));
  if (st.opts.rate_limit > 0)
    st.limiter = std::make_unique<rate_limiter>(st.opts.rate_limit,
                                                st.opts.rate_burst);
  if (!st.opts.tls_cert_file.empty()) {
    auto tls = make_bounded_tls_server(st.opts.tls_cert_file.c_str(),
                                       st.opts.tls_key_file.c_str());
    if (!tls->is_valid())
      return make_error(errc::invalid_config,
                        "server.tls: cannot load the certificate "
                          + st.opts.tls_cert_file + " or the key "
                          + st.opts.tls_key_file);
    st.srv = std::move(tls);
  } else {
    st.srv = make_bounded_server();
  }
  st.install();
  // Debian's libcpp-httplib listens with a backlog of 5 (compiled in): past
  // a few connects in a burst the kernel drops SYNs and each dropped client
  // waits out the 1 s SYN retransmit (bench/README.md, "HTTP service"). The
  // listening socket passes through the socket options hook before bind();
  // listen() on it again after the bind raises the backlog.
  auto listen_fd = std::make_shared<socket_t>(-1);
  st.srv->set_socket_options([listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    *listen_fd = sock;
  });
  int port = st.opts.port;
  if (port == 0) {
    port = st.srv->bind_to_any_port(st.opts.host);
    if (port < 0)
      return make_error(errc::unavailable,
                        "cannot listen on " + st.opts.host + ": any port");
  } else if (!st.srv->bind_to_port(st.opts.host, port)) {
    return make_error(errc::unavailable,
                      "cannot listen on " + st.opts.host + ":"
                        + std::to_string(port)
                        + " (in use, or not an address of this host)");
  }
  if (*listen_fd >= 0)
    ::listen(*listen_fd, SOMAXCONN);
  st.opts.port = port;
  return port;
}

void http_server::run() {
  impl_->srv->listen_after_bind();
}

void http_server::shutdown() {
  auto& st = *impl_;
  std::call_once(st.shutdown_once, [&st] {
    st.draining = true;
    {
      std::lock_guard<std::mutex> guard{st.streams_mtx};
      for (auto& q : st.streams)
        q->close("shutdown");
    }
    if (st.srv)
      st.srv->stop();
  });
}

void http_server::on_drain_timeout(std::function<void(size_t)> f) {
  impl_->drain_timeout_passed = std::move(f);
}

std::string http_server::url() const {
  return impl_->opts.url();
}


} // namespace cadre::runtime
