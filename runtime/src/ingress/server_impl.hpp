#pragma once

// The HTTP server's shared parts: per-request context, response helpers
// and the server state whose route groups live in their own files
// (workflow_routes.cpp, execution_routes.cpp, event_routes.cpp,
// tool_routes.cpp, schedule_routes.cpp). Private to runtime/src/ingress.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <httplib.h>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/runtime/auth.hpp"
#include "cadre/runtime/node.hpp"
#include "cadre/runtime/rate_limit.hpp"
#include "cadre/lang/regex.hpp"
#include "ingress/event_stream.hpp"
#include "ingress/http_metrics.hpp"
#include "ingress/http_server.hpp"
#include "ingress/problem.hpp"

namespace cadre::workflow {
struct validation_context;
} // namespace cadre::workflow

namespace cadre::runtime {

int64_t now_us();

/// What the middleware learns about the request being handled on this
/// thread (one request at a time per thread).
struct request_context {
  std::string id;
  /// The token's (or JWT subject's) name; empty without auth.
  std::string principal;
  std::string route = "unmatched";
  std::chrono::steady_clock::time_point start;
  /// The connection ends after the answer (end_connection_after; the
  /// connection loop of bounded_head.cpp reads it).
  bool end_connection = false;
  /// 414 or 431 when the request's head passed its bound (bounded_head.hpp);
  /// the error handler answers it and the connection ends.
  int head_too_large = 0;
};

/// The request this thread handles.
request_context& current_request();

bool valid_request_id(const std::string& id);

std::string new_request_id();

void send_json(httplib::Response& res, int status, const json& body);

/// Writes `p` as the response (with Retry-After and WWW-Authenticate where
/// they belong) and the request's id.
void send_problem(httplib::Response& res, const problem& p);

/// send_problem for a request whose body is left unread (refused before it
/// or part way): the connection ends after the answer, since httplib would
/// read the rest of the body as the next request.
void send_problem_closing(httplib::Response& res, const problem& p);

/// 413 /problems/too_large for a body over `limit` bytes (`setting` says
/// so); `declared` is its Content-Length, 0 when it had none.
problem too_large_problem(uint64_t limit, const char* setting,
                          uint64_t declared = 0);

/// How reading a request body through read_body ended.
enum class body_end { whole, too_large, cut_short };

/// Reads a request body as it arrives, each piece to `sink`, stopping once
/// more than `limit` bytes (0: no limit) came, whatever its framing
/// (httplib's own limit bounds a declared Content-Length only, not a
/// chunked body). `received` counts the bytes read. Memory holds what
/// `sink` keeps and one piece (4 KiB), never more.
template <class Sink>
body_end read_body(const httplib::ContentReader& body, uint64_t limit,
                   uint64_t& received, Sink&& sink) {
  bool over = false;
  bool whole = body([&](const char* data, size_t len) {
    received += len;
    if (limit > 0 && received > limit) {
      over = true;
      return false;
    }
    sink(data, len);
    return true;
  });
  return over ? body_end::too_large
              : whole ? body_end::whole : body_end::cut_short;
}

bool wants_stream(const httplib::Request& req);

/// A query parameter as an unsigned number; `fallback` when absent.
expected<uint64_t> query_number(const httplib::Request& req,
                                const std::string& name, uint64_t fallback,
                                uint64_t max);

struct route_def {
  std::string method;
  // RE2: the path is the client's (httplib's own routing uses std::regex,
  // kept safe by its 8 KiB bound on the request line).
  tools::regex pattern;
};

struct http_server::impl {
  node& n;
  server_options opts;
  std::unique_ptr<authenticator> auth;
  std::unique_ptr<rate_limiter> limiter;
  std::unique_ptr<httplib::Server> srv;
  http_metrics metrics;
  std::atomic<bool> draining{false};
  std::vector<route_def> routes;
  // Open streams, closed with a last event on shutdown.
  std::mutex streams_mtx;
  std::set<std::shared_ptr<stream_queue>> streams;
  // PUT of a workflow: version assignment and the conflict check are one
  // step.
  std::mutex workflows_mtx;
  std::once_flag shutdown_once;
  // See http_server::on_drain_timeout.
  std::function<void(size_t)> drain_timeout_passed;

  impl(node& nd, server_options o) : n(nd), opts(std::move(o)) {
  }

  caf::actor_system& sys() {
    return n.system();
  }

  /// One request to an actor with the request deadline; the answer or the
  /// error.
  template <class T, class Handle, class... Ts>
  expected<T> ask(const Handle& hdl, Ts&&... xs) {
    if (!hdl)
      return make_error(errc::unavailable, "the node is not running");
    caf::scoped_actor self{sys()};
    expected<T> out = make_error(errc::internal, "no answer");
    self->request(hdl, opts.request_timeout, std::forward<Ts>(xs)...)
      .receive([&](T& x) { out = std::move(x); },
               [&](caf::error& err) { out = std::move(err); });
    return out;
  }

  using handler
    = std::function<void(const httplib::Request&, httplib::Response&)>;
  /// A handler that reads the request body itself, as it arrives.
  using reading_handler
    = std::function<void(const httplib::Request&, httplib::Response&,
                         const httplib::ContentReader&)>;

  void add_route(const std::string& method, const std::string& pattern) {
    // The patterns are this file's own; one RE2 refused is a bug.
    auto re = tools::regex::compile(pattern);
    if (!re)
      throw std::logic_error{"route " + pattern + ": "
                             + message_of(re.error())};
    routes.push_back(route_def{method, std::move(*re)});
  }

  /// Runs `fn` as the handler of route `label`, an exception its 500.
  template <class F>
  static void handle(const std::string& label, httplib::Response& res,
                     F&& fn) {
    current_request().route = label;
    try {
      fn();
    } catch (const std::exception& ex) {
      send_problem(res, make_problem(500, "internal",
                                     std::string{"unexpected error: "}
                                       + ex.what()));
    }
  }

  /// A POST route whose body `fn` reads as it arrives (read_body; httplib
  /// does not hold it): no server.max_body_bytes, see body_limit.
  void add_reading(const std::string& pattern, const std::string& label,
                   reading_handler fn) {
    add_route("POST", pattern);
    srv->Post(pattern, [label, fn = std::move(fn)](
                         const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& body) {
      handle(label, res, [&] { fn(req, res, body); });
    });
  }

  /// The largest body of a request to `path` (0: none) and the setting
  /// that says so: server.max_body_bytes but for the routes that read their
  /// bodies as they arrive.
  std::pair<size_t, const char*> body_limit(const std::string& method,
                                            const std::string& path) const {
    if (method == "POST" && path == "/v1/imports")
      return {opts.max_import_bytes, "server.max_import_bytes"};
    return {opts.max_body_bytes, "server.max_body_bytes"};
  }

  /// Reads the body of `req` through `body` into `sink`, at most
  /// body_limit's bytes. False when it was not read whole, and answered:
  /// 413 over the limit, 415 multipart, 400 cut short (the connection
  /// ends after the answer).
  bool read_whole(const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& body,
                  const std::function<void(const char*, size_t)>& sink);

  /// A route: `fn` gets the request with its whole body, read bounded
  /// (read_whole) rather than by httplib, which would hold a chunked body
  /// of any size.
  void add(const std::string& method, const std::string& pattern,
           const std::string& label, handler fn) {
    add_route(method, pattern);
    if (method == "GET") {
      srv->Get(pattern, [label, fn = std::move(fn)](
                          const httplib::Request& req, httplib::Response& res) {
        handle(label, res, [&] { fn(req, res); });
      });
      return;
    }
    auto reading = [this, label, fn = std::move(fn)](
                     const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& body) {
      handle(label, res, [&] {
        std::string text;
        if (!read_whole(req, res, body, [&text](const char* data,
                                                size_t len) {
              text.append(data, len);
            }))
          return;
        // httplib hands a reading handler its request without the body.
        httplib::Request with_body = req;
        with_body.body = std::move(text);
        fn(with_body, res);
      });
    };
    if (method == "POST")
      srv->Post(pattern, reading);
    else if (method == "PUT")
      srv->Put(pattern, reading);
    else if (method == "DELETE")
      srv->Delete(pattern, reading);
    else
      throw std::logic_error{"route " + pattern + ": method " + method};
  }

  /// Methods of the routes whose pattern matches `path`.
  std::vector<std::string> allowed(const std::string& path) const {
    std::vector<std::string> out;
    for (auto& r : routes)
      if (r.pattern.full_match(path))
        out.push_back(r.method);
    return out;
  }

  /// Checks of a workflow document submitted to this node: its tools must
  /// be registered (agents are checked when they run).
  workflow::validation_context validation() const;

  /// A request for an execution another node owns, or for an agent of
  /// one: answered with a 307 to the owner's URL, or 503 owner_unavailable
  /// while the owner is not up. False when the request is for this node.
  bool route_to_owner(const httplib::Request& req, httplib::Response& res);

  void install();
  void middleware();
  void probes();
  void workflows();
  void executions();
  void events();
  void replay();
  void tools_agents_tree();
  void schedules();
  void nodes();

  /// Streams execution `id` from event `after`. A stream opened before the
  /// execution existed (submit-and-stream, so no live token is missed)
  /// passes its queue, its sink and the topic it subscribed to.
  struct open_subscription {
    std::shared_ptr<stream_queue> q;
    event_sink_actor sink;
    std::string topic;
    // Opened before the execution was submitted: every event of it,
    // tokens included, arrives through `q` in order.
    bool from_start = false;
  };
  void stream_execution(const std::string& id, uint64_t after,
                        httplib::Response& res,
                        std::optional<open_subscription> opened = {});
  void stream_all(httplib::Response& res);
  std::shared_ptr<stream_queue> open_stream();
  void close_stream(const std::shared_ptr<stream_queue>& q);
};


} // namespace cadre::runtime
