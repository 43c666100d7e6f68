// PUT, GET and DELETE of /v1/workflows.

#include "ingress/server_impl.hpp"

#include <algorithm>
#include <map>

#include "cadre/workflow/definition.hpp"
#include "ingress/request_body.hpp"

namespace cadre::runtime {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

workflow::validation_context http_server::impl::validation() const {
  workflow::validation_context ctx;
  auto tools = n.tool_names();
  ctx.tool_exists = [tools](const std::string& t) {
    return std::find(tools.begin(), tools.end(), t) != tools.end();
  };
  return ctx;
}

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
        auto ctx = validation();
        auto agents = n.config().agents;
        ctx.agent_exists = [agents](const std::string& a) {
          return agents.is_object() && agents.contains(a);
        };
        auto parsed = workflow::parse_text(req.body, "body", ctx);
        if (!parsed.def) {
          send_problem(res,
                       workflow_problem(parsed.errors, "workflow", "", true));
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


} // namespace cadre::runtime
