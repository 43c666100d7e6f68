// GET /v1/schedules and a schedule's log.

#include "ingress/server_impl.hpp"

#include <algorithm>

#include "cadre/schedule/schedule.hpp"

namespace cadre::runtime {

void http_server::impl::schedules() {
  add("GET", "/v1/schedules", "/v1/schedules",
      [this](const httplib::Request&, httplib::Response& res) {
        json list = json::array();
        // No actor: the config has no schedules (serve always runs them).
        if (auto hdl = n.schedules()) {
          auto views = ask<json_value>(hdl, list_atom_v);
          if (!views) {
            send_problem(res, problem_of(views.error()));
            return;
          }
          list = views->get();
        }
        for (auto& v : list) {
          auto last = v.find("last");
          if (last == v.end() || !last->contains("execution"))
            continue;
          auto id = (*last)["execution"].get<std::string>();
          if (auto info = ask<execution_info>(n.store(), get_atom_v, id))
            (*last)["status"] = info->status;
        }
        send_json(res, 200, json{{"schedules", std::move(list)}});
      });
  add("GET", "/v1/schedules/([A-Za-z0-9._-]{1,128})/events",
      "/v1/schedules/{name}/events",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto name = req.matches[1].str();
        const auto& all = n.config().schedules;
        if (std::none_of(all.begin(), all.end(),
                         [&](const auto& s) { return s.name == name; })) {
          send_problem(res, make_problem(404, "not_found",
                                         "no schedule '" + name + "'"));
          return;
        }
        auto after = query_number(req, "after", 0, UINT64_MAX - 1);
        auto limit = query_number(req, "limit", 100, 1000);
        if (!after || !limit) {
          send_problem(res, make_problem(400, "bad_request",
                                         message_of(!after ? after.error()
                                                           : limit.error())));
          return;
        }
        auto evs = ask<std::vector<event>>(n.store(), read_atom_v,
                                           schedule::log_name(name),
                                           *after + 1, *limit);
        if (!evs) {
          send_problem(res, problem_of(evs.error()));
          return;
        }
        json out{{"events", *evs}};
        if (evs->size() == *limit && !evs->empty())
          out["next_after"] = evs->back().seq;
        send_json(res, 200, out);
      });
}

} // namespace cadre::runtime
