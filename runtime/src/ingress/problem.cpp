#include "ingress/problem.hpp"

#include <caf/error.hpp>

#include "cadre/messages/error.hpp"

namespace cadre::runtime {

std::string title_of(const std::string& type) {
  static const std::pair<const char*, const char*> titles[] = {
    {"bad_request", "Bad request"},
    {"unauthorized", "Unauthorized"},
    {"forbidden", "Forbidden"},
    {"not_found", "Not found"},
    {"method_not_allowed", "Method not allowed"},
    {"conflict", "Conflict"},
    {"too_large", "Body too large"},
    {"uri_too_long", "Request line too long"},
    {"headers_too_large", "Request headers too large"},
    {"unsupported_media_type", "Unsupported media type"},
    {"invalid_input", "Invalid input"},
    {"invalid_workflow", "Invalid workflow"},
    {"rate_limited", "Rate limited"},
    {"overloaded", "Overloaded"},
    {"unavailable", "Unavailable"},
    {"storage_error", "Storage error"},
    {"timeout", "Timeout"},
    {"tool_failed", "Tool failed"},
    {"internal", "Internal error"},
  };
  for (auto& [t, title] : titles)
    if (type == t)
      return title;
  return "Error";
}

json problem::to_json(const std::string& request_id) const {
  json j = extra.is_object() ? extra : json::object();
  j["type"] = "/problems/" + type;
  j["title"] = title_of(type);
  j["status"] = status;
  j["detail"] = detail;
  if (!pointer.empty())
    j["pointer"] = pointer;
  if (line > 0) {
    j["line"] = line;
    j["column"] = column;
  }
  if (!request_id.empty())
    j["request_id"] = request_id;
  return j;
}

problem make_problem(int status, std::string type, std::string detail) {
  problem p;
  p.status = status;
  p.type = std::move(type);
  p.detail = std::move(detail);
  return p;
}

namespace {

// "input: /count: expected integer" -> "/count"; messages of schema checks
// name the failing place this way.
std::string leading_pointer(const std::string& msg) {
  auto at = msg.find(": /");
  if (at == std::string::npos)
    return {};
  auto start = at + 2;
  auto end = msg.find(": ", start);
  if (end == std::string::npos)
    return {};
  auto ptr = msg.substr(start, end - start);
  if (ptr.find(' ') != std::string::npos)
    return {};
  return ptr;
}

} // namespace

problem problem_of(const caf::error& err, const std::string& pointer_base) {
  problem p;
  p.detail = message_of(err);
  if (p.detail.empty())
    p.detail = describe(err);
  if (err.category() != caf::atom("cadre")) {
    // CAF's own errors: a request that ran out of time or found its actor
    // gone.
    if (err == caf::sec::request_timeout) {
      p.status = 503;
      p.type = "unavailable";
      p.detail = "the node did not answer in time";
      p.retry_after_s = 1;
    } else {
      p.status = 503;
      p.type = "unavailable";
      p.retry_after_s = 1;
    }
    return p;
  }
  switch (code_of(err)) {
    case errc::invalid_input:
      p.status = 422;
      p.type = "invalid_input";
      if (auto ptr = leading_pointer(p.detail); !ptr.empty())
        p.pointer = pointer_base + ptr;
      else if (!pointer_base.empty())
        p.pointer = pointer_base;
      break;
    case errc::invalid_workflow:
      p.status = 422;
      p.type = "invalid_workflow";
      break;
    case errc::invalid_config:
      p.status = 422;
      p.type = "invalid_input";
      break;
    case errc::not_found:
    case errc::tool_not_found:
      p.status = 404;
      p.type = "not_found";
      break;
    case errc::conflict:
      p.status = 409;
      p.type = "conflict";
      break;
    case errc::timeout:
      p.status = 504;
      p.type = "timeout";
      break;
    case errc::unauthorized:
      p.status = 401;
      p.type = "unauthorized";
      break;
    case errc::forbidden:
      p.status = 403;
      p.type = "forbidden";
      break;
    case errc::rate_limited:
      p.status = 429;
      p.type = "rate_limited";
      p.retry_after_s = 1;
      break;
    case errc::overloaded:
      p.status = 503;
      p.type = "overloaded";
      p.retry_after_s = 1;
      break;
    case errc::unavailable:
      p.status = 503;
      p.type = "unavailable";
      p.retry_after_s = 1;
      break;
    case errc::storage_error:
      // The store refused (damaged, or a full disk): not a bug, and reads
      // may still work.
      p.status = 503;
      p.type = "storage_error";
      break;
    case errc::tool_failed:
    case errc::result_too_large:
    case errc::worker_crashed:
    case errc::script_error:
    case errc::limit_exceeded:
    case errc::crash_loop:
    case errc::cancelled:
      p.status = 502;
      p.type = "tool_failed";
      break;
    default:
      p.status = 500;
      p.type = "internal";
      break;
  }
  return p;
}

} // namespace cadre::runtime
