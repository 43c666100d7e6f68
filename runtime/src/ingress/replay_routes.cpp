// Replay debugging over HTTP (docs/replay.md): the state after any event,
// forks with edits, the difference of two executions, exports and imports.
// The state, diff and bundles are computed by replay_support, as the CLI's
// commands compute them.

#include "ingress/server_impl.hpp"

#include <optional>
#include <sstream>
#include <string_view>

#include "cadre/workflow/definition.hpp"
#include "ingress/request_body.hpp"
#include "replay_support.hpp"

namespace cadre::runtime {

void http_server::impl::replay() {
  log_reader reader;
  reader.read = [this](const std::string& name, uint64_t from, uint64_t max) {
    return ask<std::vector<event>>(n.store(), read_atom_v, name, from, max);
  };
  reader.last_seq = [this](const std::string& name) {
    return ask<uint64_t>(n.store(), get_atom_v, read_atom_v, name);
  };
  reader.snapshot_every = n.config().snapshot_every;
  const std::string id_re = "/v1/executions/([A-Za-z0-9._-]{1,128})";
  add("GET", id_re + "/state", "/v1/executions/{id}/state",
      [this, reader](const httplib::Request& req, httplib::Response& res) {
        auto at = query_number(req, "at", 0, UINT64_MAX);
        if (!at) {
          send_problem(res, make_problem(400, "bad_request",
                                         message_of(at.error())));
          return;
        }
        auto state = execution_state(reader, req.matches[1].str(), *at);
        if (!state) {
          send_problem(res, problem_of(state.error()));
          return;
        }
        send_json(res, 200, *state);
      });
  add("GET", id_re + "/diff/([A-Za-z0-9._-]{1,128})",
      "/v1/executions/{id}/diff/{other}",
      [reader](const httplib::Request& req, httplib::Response& res) {
        auto diff = execution_diff(reader, req.matches[1].str(),
                                   req.matches[2].str());
        if (!diff) {
          send_problem(res, problem_of(diff.error()));
          return;
        }
        send_json(res, 200, *diff);
      });
  add("GET", id_re + "/export", "/v1/executions/{id}/export",
      [reader](const httplib::Request& req, httplib::Response& res) {
        auto id = req.matches[1].str();
        std::ostringstream out;
        if (auto ok = write_bundle(reader, id, out); !ok) {
          send_problem(res, problem_of(ok.error()));
          return;
        }
        res.status = 200;
        res.set_header("Content-Disposition",
                       "attachment; filename=\"" + id + ".ndjson\"");
        res.set_content(out.str(), "application/x-ndjson");
      });
  add("POST", id_re + "/fork", "/v1/executions/{id}/fork",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto body = parse_json_body(req.body);
        if (!body) {
          send_problem(res, body.error());
          return;
        }
        auto fork = fork_of(req.matches[1].str(), *body);
        if (!fork) {
          send_problem(res, fork.error());
          return;
        }
        if (fork->definition.is_object() || fork->definition.is_string()) {
          // Validated here, so the errors point into the body.
          auto parsed = fork->definition.is_object()
                          ? workflow::parse_document(fork->definition,
                                                     validation())
                          : workflow::parse_text(
                              fork->definition.get<std::string>(),
                              "definition", validation());
          if (!parsed.def) {
            send_problem(res, workflow_problem(parsed.errors, "definition",
                                               "/definition", false));
            return;
          }
          fork->request.definition_override
            = json_value{parsed.def->document};
        } else if (!fork->workflow.empty()) {
          auto stored = ask<definition_record>(n.store(), get_atom_v,
                                               fork->workflow,
                                               fork->version);
          if (!stored) {
            send_problem(res, problem_of(stored.error()));
            return;
          }
          fork->request.definition_override = stored->document;
        }
        auto plan = ask<json_value>(n.executions(), fork_atom_v,
                                    fork->request);
        if (!plan) {
          send_problem(res, fork_problem_of(plan.error(), fork->request));
          return;
        }
        if (fork->request.dry_run) {
          send_json(res, 200, plan->get());
          return;
        }
        auto id = plan->get().value("id", std::string{});
        res.set_header("X-Execution-Id", id);
        res.set_header("Location", "/v1/executions/" + id);
        send_json(res, 201, plan->get());
      });
  // The body is read as it arrives and imported a line at a time
  // (bundle_import): a bundle of gigabytes holds a batch in memory, never
  // the body.
  add_reading("/v1/imports", "/v1/imports",
              [this](const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& body) {
    auto ctype = req.get_header_value("Content-Type");
    if (ctype.find("ndjson") == std::string::npos) {
      // The body is not read: this connection cannot carry another request.
      send_problem_closing(res, make_problem(415, "unsupported_media_type",
                                             "an import is an export bundle "
                                             "(Content-Type: "
                                             "application/x-ndjson), got '"
                                               + ctype.substr(0, 80) + "'"));
      return;
    }
    bundle_import imp{sys(), n.store(), "body", opts.request_timeout};
    auto [limit, setting] = body_limit(req.method, req.path);
    uint64_t received = 0;
    std::optional<caf::error> failed;
    // After an error the rest is read and dropped, so that the client,
    // still sending, gets the answer rather than a reset connection.
    auto end = read_body(body, limit, received,
                         [&](const char* data, size_t len) {
                           if (!failed)
                             if (auto ok = imp.feed({data, len}); !ok)
                               failed = ok.error();
                         });
    if (end == body_end::too_large) {
      (void) imp.abandon("over server.max_import_bytes");
      send_problem_closing(res, too_large_problem(limit, setting));
      return;
    }
    if (end == body_end::cut_short) {
      if (!failed)
        failed = imp.abandon("the request body stopped after "
                             + std::to_string(received)
                             + " bytes (the client closed the connection, "
                               "or sent nothing for server.read_timeout)");
      current_request().end_connection = true;
      res.set_header("Connection", "close");
    }
    auto done = failed ? expected<json>{*failed} : imp.finish();
    if (!done) {
      // What is wrong with the bundle is the request's fault.
      if (code_of(done.error()) != errc::invalid_input) {
        send_problem(res, problem_of(done.error()));
        return;
      }
      auto line = imp.bad_line();
      auto p = make_problem(400, "bad_request", message_of(done.error()));
      p.line = static_cast<int>(line);
      p.column = imp.bad_column() > 0 ? static_cast<int>(imp.bad_column())
                                      : line > 0 ? 1 : 0;
      send_problem(res, p);
      return;
    }
    res.set_header("Location",
                   "/v1/executions/" + (*done)["execution"].get<std::string>());
    send_json(res, 201, *done);
  });
}

} // namespace cadre::runtime
