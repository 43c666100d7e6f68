// Tools (list, invoke), agents (list, one's memory) and the supervision
// tree.

#include "ingress/server_impl.hpp"

#include "ingress/request_body.hpp"

namespace cadre::runtime {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

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
        tr.idempotency_key = "api/" + name + "/" + current_request().id;
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
  // An agent id is one or two segments ("researcher", "e1/researcher",
  // "e1/extract"), sent with its slashes as they are or as %2F.
  add("GET", "/v1/agents/([A-Za-z0-9._\\[\\]/-]{1,512})",
      "/v1/agents/{agent_id}",
      [this](const httplib::Request& req, httplib::Response& res) {
        // The agents actor starts an agent not running that has a log (it
        // folds it); an id without one is not_found, starting nothing.
        auto view = ask<json_value>(n.agents(), get_atom_v,
                                    req.matches[1].str());
        if (!view) {
          send_problem(res, problem_of(view.error()));
          return;
        }
        send_json(res, 200, view->get());
      });
  add("GET", "/v1/tree", "/v1/tree",
      [this](const httplib::Request&, httplib::Response& res) {
        send_json(res, 200, n.tree());
      });
}


} // namespace cadre::runtime
