#pragma once

// RFC 9457 problem documents: how every error leaves the HTTP API.

#include <string>

#include <caf/fwd.hpp>

#include "cadre/messages/json_value.hpp"

namespace cadre::runtime {

struct problem {
  int status = 500;
  /// The slug of the type: "invalid_input" becomes "/problems/invalid_input".
  std::string type = "internal";
  std::string detail;
  /// A JSON pointer into the request body, when it was at fault.
  std::string pointer;
  /// Line and column in a YAML or JSON body (1-based; 0: unknown).
  int line = 0;
  int column = 0;
  /// Extra members (e.g. "errors" of an invalid workflow).
  json extra = json::object();
  /// Seconds for Retry-After (429, 503); 0: none.
  int retry_after_s = 0;

  /// The document, with `request_id`.
  json to_json(const std::string& request_id) const;
};

/// The title of a problem type ("Invalid input").
std::string title_of(const std::string& type);

/// The problem for a cadre error: its code picks status and type, its
/// message is the detail (a JSON pointer at its start becomes `pointer`
/// under `pointer_base`, e.g. "/input").
problem problem_of(const caf::error& err, const std::string& pointer_base = "");

problem make_problem(int status, std::string type, std::string detail);

} // namespace cadre::runtime
