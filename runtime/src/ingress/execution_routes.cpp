// Submitting, listing, reading, cancelling and answering executions.

#include "ingress/server_impl.hpp"

#include <algorithm>
#include <set>
#include <thread>

#include "cadre/workflow/definition.hpp"
#include "ingress/execution_view.hpp"
#include "ingress/request_body.hpp"

namespace cadre::runtime {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

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
          auto parsed = workflow::parse_document(sub->definition.get(),
                                                 validation());
          if (!parsed.def) {
            send_problem(res, workflow_problem(parsed.errors, "definition",
                                               "/definition", false));
            return;
          }
        }
        auto key = sub->idempotency_key;
        std::string existing;
        if (!key.empty())
          if (auto found = ask<std::string>(n.store(), get_atom_v,
                                            submit_atom_v, key))
            existing = *found;
        // Submit-and-stream listens before it submits: a model's tokens
        // are live only, and an instant one streams before a later
        // subscription would.
        std::optional<open_subscription> early;
        if (wants_stream(req)) {
          early = open_subscription{open_stream(), {}, std::string{}};
          early->sink = spawn_stream_sink(sys(), early->q);
          caf::anon_send(n.bus(), subscribe_atom_v, early->topic,
                         early->sink);
        }
        auto id = ask<std::string>(n.executions(), submit_atom_v, *sub);
        if (!id) {
          if (early) {
            caf::anon_send(n.bus(), unsub_atom_v, early->topic, early->sink);
            caf::anon_send_exit(early->sink, caf::exit_reason::user_shutdown);
            close_stream(early->q);
          }
          send_problem(res, problem_of(id.error(), "/input"));
          return;
        }
        res.set_header("X-Execution-Id", *id);
        res.set_header("Location", "/v1/executions/" + *id);
        if (early) {
          early->q->only(*id);
          early->from_start = existing != *id;
          stream_execution(*id, 0, res, early);
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


} // namespace cadre::runtime
