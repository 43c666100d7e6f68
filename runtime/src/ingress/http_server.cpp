#include "ingress/http_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include <httplib.h>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/actors/metrics.hpp"
#include "cadre/actors/supervisor.hpp"
#include "cadre/runtime/auth.hpp"
#include "cadre/runtime/node.hpp"
#include "cadre/runtime/rate_limit.hpp"
#include "cadre/workflow/definition.hpp"
#include "ingress/event_stream.hpp"
#include "ingress/execution_view.hpp"
#include "ingress/http_metrics.hpp"
#include "ingress/openapi.hpp"
#include "ingress/problem.hpp"
#include "ingress/request_body.hpp"

namespace cadre::runtime {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

// -- the thread pool ----------------------------------------------------------

// Set on the thread that handles a connection the pool could not take: the
// request is answered 503 at once instead of waiting without bound.
thread_local bool overflow_lane = false;

/// httplib's own pool queues connections without bound. This one runs at
/// most `threads` connections at once, queues `max_queued` more, answers
/// the next `max_queued` with 503 on a lane of its own, and past that
/// blocks the accept loop, so the kernel's backlog pushes back.
class bounded_pool final : public httplib::TaskQueue {
public:
  bounded_pool(size_t threads, size_t max_queued, milliseconds drain)
    : workers_(threads), max_queued_(max_queued), drain_(drain) {
    for (size_t i = 0; i < threads; ++i)
      threads_.emplace_back([this] { work(false); });
    threads_.emplace_back([this] { work(true); });
  }

  ~bounded_pool() override {
    shutdown();
  }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> guard{mtx_};
    // Connections an idle worker is about to take do not count as queued.
    auto room = [this] {
      auto idle = workers_ > busy_ ? workers_ - busy_ : 0;
      return jobs_.size() < max_queued_ + idle;
    };
    space_.wait(guard, [&] {
      return stop_ || room() || rejects_.size() < max_queued_;
    });
    if (stop_)
      return;
    if (room())
      jobs_.push_back(std::move(fn));
    else
      rejects_.push_back(std::move(fn));
    work_.notify_all();
  }

  // Waits for the connections in hand up to the drain timeout; threads
  // still busy after it are left to end with the process.
  void shutdown() override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stop_)
        return;
      stop_ = true;
    }
    work_.notify_all();
    space_.notify_all();
    auto deadline = steady_clock::now() + drain_;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      done_.wait_until(guard, deadline,
                       [this] { return running_ == 0 && jobs_.empty(); });
    }
    for (auto& t : threads_) {
      std::unique_lock<std::mutex> guard{mtx_};
      bool finished = running_ == 0;
      guard.unlock();
      if (finished || steady_clock::now() < deadline)
        t.join();
      else
        t.detach();
    }
    threads_.clear();
  }

private:
  void work(bool reject_lane) {
    overflow_lane = reject_lane;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        auto& q = reject_lane ? rejects_ : jobs_;
        work_.wait(guard, [&] { return stop_ || !q.empty(); });
        if (q.empty())
          return;
        fn = std::move(q.front());
        q.pop_front();
        ++running_;
        if (!reject_lane)
          ++busy_;
      }
      space_.notify_one();
      fn();
      {
        std::lock_guard<std::mutex> guard{mtx_};
        --running_;
        if (!reject_lane)
          --busy_;
      }
      space_.notify_one();
      done_.notify_all();
    }
  }

  std::mutex mtx_;
  std::condition_variable work_;
  std::condition_variable space_;
  std::condition_variable done_;
  std::deque<std::function<void()>> jobs_;
  std::deque<std::function<void()>> rejects_;
  std::vector<std::thread> threads_;
  size_t workers_;
  size_t max_queued_;
  milliseconds drain_;
  // Connections being handled, on either lane, and on the workers' lane.
  size_t running_ = 0;
  size_t busy_ = 0;
  bool stop_ = false;
};

// -- per request ---------------------------------------------------------------

/// What the middleware learns about the request being handled on this
/// thread (one request at a time per thread).
struct request_context {
  std::string id;
  /// The token's (or JWT subject's) name; empty without auth.
  std::string principal;
  std::string route = "unmatched";
  steady_clock::time_point start;
};

thread_local request_context current;

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
  res.set_content(p.to_json(current.id).dump(-1, ' ', false,
                                             json::error_handler_t::replace),
                  "application/problem+json");
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

struct route_def {
  std::string method;
  std::regex pattern;
};

} // namespace

// -- the server ----------------------------------------------------------------

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

  void add(const std::string& method, const std::string& pattern,
           const std::string& label, handler fn) {
    routes.push_back(route_def{method, std::regex{pattern}});
    auto wrapped = [this, label, fn = std::move(fn)](
                     const httplib::Request& req, httplib::Response& res) {
      current.route = label;
      try {
        fn(req, res);
      } catch (const std::exception& ex) {
        send_problem(res, make_problem(500, "internal",
                                       std::string{"unexpected error: "}
                                         + ex.what()));
      }
    };
    if (method == "GET")
      srv->Get(pattern, wrapped);
    else if (method == "POST")
      srv->Post(pattern, wrapped);
    else if (method == "PUT")
      srv->Put(pattern, wrapped);
    else if (method == "DELETE")
      srv->Delete(pattern, wrapped);
  }

  /// Methods of the routes whose pattern matches `path`.
  std::vector<std::string> allowed(const std::string& path) const {
    std::vector<std::string> out;
    for (auto& r : routes)
      if (std::regex_match(path, r.pattern))
        out.push_back(r.method);
    return out;
  }

  void install();
  void middleware();
  void probes();
  void workflows();
  void executions();
  void events();
  void tools_agents_tree();

  void stream_execution(const std::string& id, uint64_t after,
                        httplib::Response& res);
  void stream_all(httplib::Response& res);
  std::shared_ptr<stream_queue> open_stream();
  void close_stream(const std::shared_ptr<stream_queue>& q);
};

void http_server::impl::install() {
  srv->new_task_queue = [this] {
    return new bounded_pool(opts.threads, opts.max_queued_connections,
                            opts.drain_timeout);
  };
  srv->set_read_timeout(opts.read_timeout);
  srv->set_write_timeout(opts.write_timeout);
  srv->set_keep_alive_timeout(5);
  // A backstop for chunked bodies; a declared Content-Length over the
  // limit is refused before the body is read (middleware).
  srv->set_payload_max_length(opts.max_body_bytes);
  middleware();
  probes();
  workflows();
  executions();
  events();
  tools_agents_tree();
}

void http_server::impl::middleware() {
  srv->set_pre_routing_handler([this](const httplib::Request& req,
                                      httplib::Response& res) {
    current = request_context{};
    current.start = steady_clock::now();
    auto given = req.get_header_value("X-Request-Id");
    current.id = valid_request_id(given) ? given : new_request_id();
    res.set_header("X-Request-Id", current.id);
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
          res.set_header("Access-Control-Allow-Methods",
                         "GET, POST, PUT, DELETE, OPTIONS");
          res.set_header("Access-Control-Allow-Headers",
                         "Authorization, Content-Type, Last-Event-ID, "
                         "X-Request-Id");
          res.set_header("Access-Control-Max-Age", "600");
          res.status = 204;
          current.route = "preflight";
          return httplib::Server::HandlerResponse::Handled;
        }
      }
    }
    if (overflow_lane) {
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
        current.principal = who->name;
      }
    }
    if (limiter && !probe) {
      auto key = current.principal.empty() ? "addr:" + req.remote_addr
                                           : "token:" + current.principal;
      if (auto wait = limiter->try_acquire(key, steady_clock::now())) {
        auto p = make_problem(429, "rate_limited",
                              "over the request rate of "
                                + (current.principal.empty()
                                     ? "this address"
                                     : "token " + current.principal)
                                + " (server.rate_limit)");
        p.retry_after_s = static_cast<int>((wait->count() + 999) / 1000);
        send_problem(res, p);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (req.has_header("Content-Length")) {
      auto declared = std::strtoull(
        req.get_header_value("Content-Length").c_str(), nullptr, 10);
      if (declared > opts.max_body_bytes) {
        res.set_header("Connection", "close");
        send_problem(res,
                     make_problem(413, "too_large",
                                  "the body has " + std::to_string(declared)
                                    + " bytes; the limit is "
                                    + std::to_string(opts.max_body_bytes)
                                    + " (server.max_body_bytes)"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  srv->set_error_handler(httplib::Server::HandlerWithResponse{
    [this](const httplib::Request& req, httplib::Response& res) {
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
      send_problem(res, make_problem(413, "too_large",
                                     "the body is over "
                                       + std::to_string(opts.max_body_bytes)
                                       + " bytes (server.max_body_bytes)"));
      return httplib::Server::HandlerResponse::Handled;
    }
    send_problem(res, make_problem(res.status,
                                   res.status >= 500 ? "internal"
                                                     : "bad_request",
                                   "the request could not be read"));
    return httplib::Server::HandlerResponse::Handled;
  }});
  srv->set_logger([this](const httplib::Request& req,
                         const httplib::Response& res) {
    auto elapsed = std::chrono::duration<double>(steady_clock::now()
                                                 - current.start)
                     .count();
    metrics.observe(current.route, req.method, res.status, elapsed);
    log_request(current.id, req.method, req.path, current.route, res.status,
                elapsed, req.remote_addr, current.principal);
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
                    + d["queued"].dump() + "\n";
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

// -- workflows -----------------------------------------------------------------

void http_server::impl::workflows() {
  const std::string name_re = "([A-Za-z0-9._-]{1,128})";
  add("PUT", "/v1/workflows/" + name_re, "/v1/workflows/{name}",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto name = req.matches[1].str();
        auto ctype = req.get_header_value("Content-Type");
        if (!ctype.empty() && ctype.find("json") == std::string::npos
            && ctype.find("yaml") == std::string::npos
            && ctype.find("text/plain") == std::string::npos) {
          send_problem(res, make_problem(415, "unsupported_media_type",
                                         "a workflow is JSON or YAML, got "
                                           + ctype));
          return;
        }
        if (auto bad = check_text(req.body); bad) {
          send_problem(res, *bad);
          return;
        }
        workflow::validation_context ctx;
        auto tools = n.tool_names();
        ctx.tool_exists = [tools](const std::string& t) {
          return std::find(tools.begin(), tools.end(), t) != tools.end();
        };
        auto agents = n.config().agents;
        ctx.agent_exists = [agents](const std::string& a) {
          return agents.is_object() && agents.contains(a);
        };
        auto parsed = workflow::parse_text(req.body, "body", ctx);
        if (!parsed.def) {
          auto p = make_problem(422, "invalid_workflow",
                                "the workflow has "
                                  + std::to_string(parsed.errors.size())
                                  + " error"
                                  + (parsed.errors.size() == 1 ? "" : "s"));
          json errs = json::array();
          for (auto& d : parsed.errors) {
            errs.push_back(json{{"line", d.where.line},
                                {"column", d.where.column},
                                {"pointer", d.pointer},
                                {"message", d.message}});
          }
          if (!parsed.errors.empty()) {
            auto& first = parsed.errors.front();
            p.detail += "; first: " + first.to_string();
            p.pointer = first.pointer;
            p.line = static_cast<int>(first.where.line);
            p.column = static_cast<int>(first.where.column);
          }
          p.extra["errors"] = std::move(errs);
          send_problem(res, p);
          return;
        }
        auto doc = parsed.def->document;
        if (parsed.def->name != name) {
          auto p = make_problem(422, "invalid_workflow",
                                "the document's name is '" + parsed.def->name
                                  + "' but the path names '" + name + "'");
          p.pointer = "/name";
          send_problem(res, p);
          return;
        }
        std::lock_guard<std::mutex> guard{workflows_mtx};
        std::string version;
        if (doc.contains("version")) {
          version = parsed.def->version;
        } else {
          auto stored = ask<std::vector<definition_record>>(
            n.store(), list_atom_v, put_atom_v, name);
          if (!stored) {
            send_problem(res, problem_of(stored.error()));
            return;
          }
          uint64_t next = 1;
          for (auto& d : *stored) {
            char* end = nullptr;
            auto v = std::strtoull(d.version.c_str(), &end, 10);
            if (*end == '\0' && v >= next)
              next = v + 1;
          }
          version = std::to_string(next);
          doc["version"] = version;
        }
        auto existing = ask<definition_record>(n.store(), get_atom_v, name,
                                               version);
        if (existing) {
          if (existing->document.get() == doc) {
            send_json(res, 200, json{{"name", name}, {"version", version}});
            return;
          }
          send_problem(res,
                       make_problem(409, "conflict",
                                    "workflow " + name + " version " + version
                                      + " is stored with other content; "
                                        "change its version"));
          return;
        }
        auto put = ask<bool>(n.store(), put_atom_v,
                             definition_record{name, version, json_value{doc}});
        if (!put) {
          send_problem(res, problem_of(put.error()));
          return;
        }
        send_json(res, 201, json{{"name", name}, {"version", version}});
      });
  add("GET", "/v1/workflows", "/v1/workflows",
      [this](const httplib::Request&, httplib::Response& res) {
        auto stored = ask<std::vector<definition_record>>(
          n.store(), list_atom_v, put_atom_v, std::string{});
        if (!stored) {
          send_problem(res, problem_of(stored.error()));
          return;
        }
        std::map<std::string, std::vector<std::string>> by_name;
        for (auto& d : *stored)
          by_name[d.name].push_back(d.version);
        json list = json::array();
        for (auto& [name, versions] : by_name) {
          auto latest = ask<definition_record>(n.store(), get_atom_v, name,
                                               std::string{});
          list.push_back(json{{"name", name},
                              {"versions", versions},
                              {"latest", latest ? latest->version : ""}});
        }
        send_json(res, 200, json{{"workflows", list}});
      });
  add("GET", "/v1/workflows/" + name_re, "/v1/workflows/{name}",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto name = req.matches[1].str();
        auto version = req.get_param_value("version");
        auto def = ask<definition_record>(n.store(), get_atom_v, name, version);
        if (!def) {
          send_problem(res, problem_of(def.error()));
          return;
        }
        send_json(res, 200, json{{"name", def->name},
                                 {"version", def->version},
                                 {"definition", def->document.get()}});
      });
  add("DELETE", "/v1/workflows/" + name_re, "/v1/workflows/{name}",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto name = req.matches[1].str();
        auto removed = ask<uint64_t>(n.store(), delete_atom_v, name);
        if (!removed) {
          send_problem(res, problem_of(removed.error()));
          return;
        }
        if (*removed == 0) {
          send_problem(res, make_problem(404, "not_found",
                                         "workflow " + name
                                           + " is not stored"));
          return;
        }
        res.status = 204;
      });
}

// -- executions ----------------------------------------------------------------

void http_server::impl::executions() {
  add("POST", "/v1/executions", "/v1/executions",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto body = parse_json_body(req.body);
        if (!body) {
          send_problem(res, body.error());
          return;
        }
        auto sub = submission_of(*body);
        if (!sub) {
          send_problem(res, sub.error());
          return;
        }
        auto wait = query_number(req, "wait", 0, 300);
        if (!wait) {
          send_problem(res, problem_of(wait.error()));
          return;
        }
        if (!sub->definition.is_null()) {
          // Validate here, so the errors carry pointers into the body.
          workflow::validation_context ctx;
          auto tools = n.tool_names();
          ctx.tool_exists = [tools](const std::string& t) {
            return std::find(tools.begin(), tools.end(), t) != tools.end();
          };
          auto parsed = workflow::parse_document(sub->definition.get(), ctx);
          if (!parsed.def) {
            auto p = make_problem(422, "invalid_workflow",
                                  "the definition has "
                                    + std::to_string(parsed.errors.size())
                                    + " error(s)");
            json errs = json::array();
            for (auto& d : parsed.errors)
              errs.push_back(json{{"pointer", "/definition" + d.pointer},
                                  {"message", d.message}});
            if (!parsed.errors.empty()) {
              p.pointer = "/definition" + parsed.errors.front().pointer;
              p.detail += "; first: " + p.pointer + ": "
                          + parsed.errors.front().message;
            }
            p.extra["errors"] = std::move(errs);
            send_problem(res, p);
            return;
          }
        }
        auto key = sub->idempotency_key;
        std::string existing;
        if (!key.empty())
          if (auto found = ask<std::string>(n.store(), get_atom_v,
                                            submit_atom_v, key))
            existing = *found;
        auto id = ask<std::string>(n.executions(), submit_atom_v, *sub);
        if (!id) {
          send_problem(res, problem_of(id.error(), "/input"));
          return;
        }
        res.set_header("X-Execution-Id", *id);
        res.set_header("Location", "/v1/executions/" + *id);
        if (wants_stream(req)) {
          stream_execution(*id, 0, res);
          return;
        }
        int status = existing == *id ? 200 : 201;
        if (*wait == 0) {
          auto st = ask<execution_info>(n.executions(), status_atom_v, *id);
          send_json(res, status,
                    json{{"id", *id},
                         {"status", st ? st->status : std::string{"running"}}});
          return;
        }
        // Until the execution ends or waits for a person.
        auto deadline = steady_clock::now() + std::chrono::seconds{*wait};
        execution_info info;
        for (;;) {
          auto st = ask<execution_info>(n.executions(), status_atom_v, *id);
          if (st) {
            info = std::move(*st);
            if (info.finished() || info.status == "waiting")
              break;
          }
          if (steady_clock::now() >= deadline || draining)
            break;
          std::this_thread::sleep_for(milliseconds{20});
        }
        auto evs = ask<std::vector<event>>(n.store(), read_atom_v, *id,
                                           uint64_t{1}, uint64_t{0});
        auto view = execution_view(info, evs ? *evs : std::vector<event>{});
        send_json(res, info.finished() || info.status == "waiting" ? 200 : 202,
                  view);
      });
  add("GET", "/v1/executions", "/v1/executions",
      [this](const httplib::Request& req, httplib::Response& res) {
        execution_filter filter;
        filter.status = req.get_param_value("status");
        static const std::set<std::string> statuses
          = {"", "running", "waiting", "completed", "failed", "cancelled"};
        if (!statuses.count(filter.status)) {
          auto p = make_problem(400, "bad_request",
                                "query parameter status: unknown status '"
                                  + filter.status.substr(0, 40)
                                  + "' (known: running, waiting, completed, "
                                    "failed, cancelled)");
          send_problem(res, p);
          return;
        }
        filter.workflow = req.get_param_value("workflow");
        auto limit = query_number(req, "limit", 50, 1000);
        if (!limit) {
          send_problem(res, make_problem(400, "bad_request",
                                         message_of(limit.error())));
          return;
        }
        auto cursor = req.get_param_value("cursor");
        auto all = ask<std::vector<execution_info>>(n.store(), list_atom_v,
                                                    filter);
        if (!all) {
          send_problem(res, problem_of(all.error()));
          return;
        }
        // Ids are time-ordered: newest first is descending id order, and
        // the cursor is the last id of the previous page.
        std::sort(all->begin(), all->end(),
                  [](auto& x, auto& y) { return x.id > y.id; });
        json page = json::array();
        std::string next;
        for (auto& x : *all) {
          if (!cursor.empty() && x.id >= cursor)
            continue;
          if (page.size() == *limit) {
            next = page.back()["id"].get<std::string>();
            break;
          }
          page.push_back(x);
        }
        json out{{"executions", std::move(page)}};
        if (!next.empty())
          out["next_cursor"] = next;
        send_json(res, 200, out);
      });
  const std::string id_re = "/v1/executions/([A-Za-z0-9._-]{1,128})";
  add("GET", id_re, "/v1/executions/{id}",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto id = req.matches[1].str();
        auto info = ask<execution_info>(n.executions(), status_atom_v, id);
        if (!info) {
          send_problem(res, problem_of(info.error()));
          return;
        }
        auto evs = ask<std::vector<event>>(n.store(), read_atom_v, id,
                                           uint64_t{1}, uint64_t{0});
        if (!evs) {
          send_problem(res, problem_of(evs.error()));
          return;
        }
        send_json(res, 200, execution_view(*info, *evs));
      });
  add("POST", id_re + "/cancel", "/v1/executions/{id}/cancel",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto id = req.matches[1].str();
        auto cancelled = ask<bool>(n.executions(), cancel_atom_v, id);
        if (!cancelled) {
          send_problem(res, problem_of(cancelled.error()));
          return;
        }
        send_json(res, 200, json{{"cancelled", *cancelled}});
      });
  add("POST", id_re + "/input", "/v1/executions/{id}/input",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto id = req.matches[1].str();
        auto body = parse_json_body(req.body);
        if (!body) {
          send_problem(res, body.error());
          return;
        }
        auto in = human_input_of(id, *body);
        if (!in) {
          send_problem(res, in.error());
          return;
        }
        auto seq = ask<uint64_t>(n.executions(), input_atom_v, *in);
        if (!seq) {
          send_problem(res, problem_of(seq.error(), "/value"));
          return;
        }
        send_json(res, 202, json{{"seq", *seq}});
      });
}

// -- events --------------------------------------------------------------------

std::shared_ptr<stream_queue> http_server::impl::open_stream() {
  auto q = std::make_shared<stream_queue>(
    opts.sse_queue, [counter = metrics.cut_off_counter()] { ++*counter; });
  std::lock_guard<std::mutex> guard{streams_mtx};
  streams.insert(q);
  if (draining)
    q->close("shutdown");
  return q;
}

void http_server::impl::close_stream(const std::shared_ptr<stream_queue>& q) {
  std::lock_guard<std::mutex> guard{streams_mtx};
  streams.erase(q);
}

void http_server::impl::stream_execution(const std::string& id, uint64_t after,
                                         httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
    "text/event-stream",
    [this, id, after](size_t, httplib::DataSink& sink) {
      auto q = open_stream();
      auto sinker = spawn_stream_sink(sys(), q);
      auto bus = n.bus();
      // Subscribe before reading the store: whatever is appended after the
      // read arrives live, and live events the read already had are
      // skipped by their sequence number.
      caf::anon_send(bus, subscribe_atom_v, id, sinker);
      auto finish = [&] {
        caf::anon_send(bus, unsub_atom_v, id, sinker);
        caf::anon_send_exit(sinker, caf::exit_reason::user_shutdown);
        close_stream(q);
        sink.done();
        return true;
      };
      uint64_t last = after;
      auto write = [&](const std::string& text) {
        return sink.write(text.data(), text.size());
      };
      // Reads and writes the stored events after `last`, in pages.
      // Returns false when the client is gone; sets `ended` on a
      // terminal event.
      bool ended = false;
      auto catch_up = [&]() -> bool {
        constexpr uint64_t page = 500;
        for (;;) {
          auto evs = ask<std::vector<event>>(n.store(), read_atom_v, id,
                                             last + 1, page);
          if (!evs)
            return write(sse_message("", "close",
                                     json{{"reason", "unavailable"},
                                          {"last_event_id", last},
                                          {"detail", describe(evs.error())}}
                                       .dump()))
                   && false;
          for (auto& ev : *evs) {
            if (!write(sse_of(ev, false)))
              return false;
            last = ev.seq;
            if (terminal(ev))
              ended = true;
          }
          if (evs->size() < page)
            return true;
        }
      };
      auto end_message = [&] {
        auto info = ask<execution_info>(n.store(), get_atom_v, id);
        json data{{"status", info ? info->status : "unknown"},
                  {"last_seq", last}};
        return sse_message("", "end", data.dump());
      };
      // Unknown executions are 404 before any byte would be better, but
      // the headers are out once the provider runs; an execution without
      // events gets a close event naming the problem instead.
      if (!catch_up())
        return finish();
      if (last == 0) {
        auto info = ask<execution_info>(n.store(), get_atom_v, id);
        if (!info) {
          write(sse_message("", "close",
                            json{{"reason", "not_found"},
                                 {"detail", "execution " + id
                                              + " is not in the store"}}
                              .dump()));
          return finish();
        }
      }
      if (ended) {
        write(end_message());
        return finish();
      }
      std::vector<event> batch;
      for (;;) {
        batch.clear();
        auto woke = q->pop(batch, opts.sse_keepalive);
        if (woke == stream_queue::wake::overflowed) {
          write(sse_message("", "close",
                            json{{"reason", "overloaded"},
                                 {"last_event_id", last},
                                 {"detail",
                                  "the client read too slowly: more than "
                                    + std::to_string(opts.sse_queue)
                                    + " events waited (server.sse.queue); "
                                      "reconnect with Last-Event-ID"}}
                              .dump()));
          return finish();
        }
        if (woke == stream_queue::wake::closed) {
          write(sse_message("", "close",
                            json{{"reason", q->close_reason()},
                                 {"last_event_id", last}}
                              .dump()));
          return finish();
        }
        if (woke == stream_queue::wake::timeout) {
          if (!write(": keep-alive\n\n"))
            return finish();
          continue;
        }
        for (auto& ev : batch) {
          if (ev.seq == 0) {
            if (!write(sse_of(ev, false)))
              return finish();
            continue;
          }
          if (ev.seq <= last)
            continue;
          if (ev.seq > last + 1) {
            // A gap (events appended between the subscription and the
            // read): the store has them.
            if (!catch_up())
              return finish();
            if (ev.seq <= last)
              continue;
          }
          if (!write(sse_of(ev, false)))
            return finish();
          last = ev.seq;
          if (terminal(ev))
            ended = true;
        }
        if (ended) {
          write(end_message());
          return finish();
        }
      }
    });
}

void http_server::impl::stream_all(httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  res.set_chunked_content_provider(
    "text/event-stream", [this](size_t, httplib::DataSink& sink) {
      auto q = open_stream();
      auto sinker = spawn_stream_sink(sys(), q);
      auto bus = n.bus();
      caf::anon_send(bus, subscribe_atom_v, std::string{}, sinker);
      auto write = [&](const std::string& text) {
        return sink.write(text.data(), text.size());
      };
      std::vector<event> batch;
      for (;;) {
        batch.clear();
        auto woke = q->pop(batch, opts.sse_keepalive);
        bool ok = true;
        if (woke == stream_queue::wake::overflowed) {
          write(sse_message("", "close",
                            json{{"reason", "overloaded"}}.dump()));
          ok = false;
        } else if (woke == stream_queue::wake::closed) {
          write(sse_message("", "close",
                            json{{"reason", q->close_reason()}}.dump()));
          ok = false;
        } else if (woke == stream_queue::wake::timeout) {
          ok = write(": keep-alive\n\n");
        } else {
          for (auto& ev : batch)
            if (!(ok = write(sse_of(ev, true))))
              break;
        }
        if (!ok)
          break;
      }
      caf::anon_send(bus, unsub_atom_v, std::string{}, sinker);
      caf::anon_send_exit(sinker, caf::exit_reason::user_shutdown);
      close_stream(q);
      sink.done();
      return true;
    });
}

void http_server::impl::events() {
  const std::string id_re = "/v1/executions/([A-Za-z0-9._-]{1,128})/events";
  add("GET", id_re, "/v1/executions/{id}/events",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto id = req.matches[1].str();
        auto after = query_number(req, "after", 0, UINT64_MAX - 1);
        if (!after) {
          send_problem(res, make_problem(400, "bad_request",
                                         message_of(after.error())));
          return;
        }
        if (wants_stream(req)) {
          auto from = *after;
          auto last_id = req.get_header_value("Last-Event-ID");
          if (!last_id.empty()) {
            char* end = nullptr;
            auto x = std::strtoull(last_id.c_str(), &end, 10);
            if (*end != '\0') {
              send_problem(res, make_problem(400, "bad_request",
                                             "Last-Event-ID: expected an "
                                             "event sequence number, got '"
                                               + last_id.substr(0, 40) + "'"));
              return;
            }
            from = std::max(from, static_cast<uint64_t>(x));
          }
          auto info = ask<execution_info>(n.store(), get_atom_v, id);
          if (!info) {
            send_problem(res, problem_of(info.error()));
            return;
          }
          stream_execution(id, from, res);
          return;
        }
        auto limit = query_number(req, "limit", 100, 1000);
        if (!limit) {
          send_problem(res, make_problem(400, "bad_request",
                                         message_of(limit.error())));
          return;
        }
        auto evs = ask<std::vector<event>>(n.store(), read_atom_v, id,
                                           *after + 1, *limit);
        if (!evs) {
          send_problem(res, problem_of(evs.error()));
          return;
        }
        if (evs->empty() && *after == 0) {
          auto info = ask<execution_info>(n.store(), get_atom_v, id);
          if (!info) {
            send_problem(res, problem_of(info.error()));
            return;
          }
        }
        json out{{"events", *evs}};
        if (evs->size() == *limit && !evs->empty())
          out["next_after"] = evs->back().seq;
        send_json(res, 200, out);
      });
  add("GET", "/v1/events", "/v1/events",
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!wants_stream(req)) {
          send_problem(res, make_problem(406, "bad_request",
                                         "GET /v1/events is a stream; send "
                                         "Accept: text/event-stream"));
          return;
        }
        stream_all(res);
      });
}

// -- tools, agents, tree ---------------------------------------------------------

void http_server::impl::tools_agents_tree() {
  add("GET", "/v1/tools", "/v1/tools",
      [this](const httplib::Request&, httplib::Response& res) {
        send_json(res, 200, json{{"tools", n.describe_tools()}});
      });
  add("POST", "/v1/tools/([A-Za-z0-9._-]{1,128})/invoke",
      "/v1/tools/{name}/invoke",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto name = req.matches[1].str();
        auto pool = n.pool(name);
        if (!pool) {
          send_problem(res, make_problem(404, "not_found",
                                         "no tool '" + name
                                           + "' on this node"));
          return;
        }
        auto body = parse_json_body(req.body);
        if (!body) {
          send_problem(res, body.error());
          return;
        }
        auto call = tool_call_of(*body);
        if (!call) {
          send_problem(res, call.error());
          return;
        }
        task_request tr;
        tr.execution_id = "api";
        tr.task_id = name;
        tr.tool = name;
        tr.input = json_value{call->input};
        auto timeout = call->timeout_ms > 0
                         ? milliseconds{call->timeout_ms}
                         : opts.request_timeout;
        tr.deadline_us = now_us() + timeout.count() * 1000;
        tr.idempotency_key = "api/" + name + "/" + current.id;
        caf::scoped_actor self{sys()};
        expected<task_result> out = make_error(errc::internal, "no answer");
        // The pool enforces the call's deadline; a second more lets its
        // timeout error arrive instead of ours.
        self->request(pool, timeout + std::chrono::seconds{1}, run_atom_v,
                      std::move(tr))
          .receive([&](task_result& r) { out = std::move(r); },
                   [&](caf::error& err) { out = std::move(err); });
        if (!out) {
          send_problem(res, problem_of(out.error(), "/input"));
          return;
        }
        json j{{"output", out->output.get()},
               {"duration_us", out->duration_us}};
        if (!out->usage.is_null())
          j["usage"] = out->usage.get();
        send_json(res, 200, j);
      });
  add("GET", "/v1/agents", "/v1/agents",
      [this](const httplib::Request&, httplib::Response& res) {
        json list = json::array();
        const auto& agents = n.config().agents;
        if (agents.is_object())
          for (auto& [name, spec] : agents.items())
            list.push_back(json{{"name", name}, {"spec", spec}});
        send_json(res, 200, json{{"agents", list}});
      });
  add("GET", "/v1/tree", "/v1/tree",
      [this](const httplib::Request&, httplib::Response& res) {
        send_json(res, 200, n.tree());
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
    auto tls = std::make_unique<httplib::SSLServer>(
      st.opts.tls_cert_file.c_str(), st.opts.tls_key_file.c_str());
    if (!tls->is_valid())
      return make_error(errc::invalid_config,
                        "server.tls: cannot load the certificate "
                          + st.opts.tls_cert_file + " or the key "
                          + st.opts.tls_key_file);
    st.srv = std::move(tls);
  } else {
    st.srv = std::make_unique<httplib::Server>();
  }
  st.install();
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

std::string http_server::url() const {
  return impl_->opts.url();
}

} // namespace cadre::runtime
