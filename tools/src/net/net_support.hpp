#pragma once

// What the network tools (http, notify, search) share: their common
// settings (SSRF policy, timeouts, limits, retries), a request built from a
// tool_context, and turning response bodies into JSON output. Private to
// tools/.

#include <array>
#include <initializer_list>
#include <string>
#include <string_view>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/tools/net/http_client.hpp"
#include "cadre/tools/tool.hpp"

namespace cadre::tools::net {

/// Settings every network tool reads from `tools.<name>`.
struct net_options {
  /// allowed_hosts, allow_private (loopback and private ranges) and
  /// allow_link_local. Default: public addresses only, any host
  ssrf_policy policy;
  /// `connect_timeout_ms`. Default: 10 s
  std::chrono::milliseconds connect_timeout{10'000};
  /// `timeout_ms`, per attempt. Default: 30 s
  std::chrono::milliseconds timeout{30'000};
  /// `max_redirects`. Default: 5
  uint32_t max_redirects = 5;
  /// `max_response_bytes`. Default: 10 MiB
  uint64_t max_response_bytes = 10u << 20;
  /// `max_attempts`, `retry_base_ms`, `retry_max_ms`. Default: 3, 250 ms,
  /// 30 s
  retry_policy retry;
};

/// The settings schema's properties of the net_options keys, with the
/// defaults of `defaults`: each network tool's settings schema holds them
/// beside its own keys.
json net_settings_properties(const net_options& defaults = {});

/// Reads the net_options keys of `settings`, which the tool's settings
/// schema accepted, over `defaults`.
net_options parse_net_options(std::string_view tool, const json& settings,
                              net_options defaults = {});

/// A request carrying `opts` and the context's deadline and cancel flag.
http_request make_request(const net_options& opts, const tool_context& ctx);

/// "tool <name>: " + the message of `err`, keeping its code.
caf::error tool_error(std::string_view tool, const caf::error& err);

/// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);

/// Appends "key=value" pairs (already encoded, "a=1&b=2") to the query of
/// `url`, before any fragment.
std::string append_query(std::string_view url, std::string_view pairs);

/// True when `text` is well-formed UTF-8 (so it can be a JSON string).
bool valid_utf8(std::string_view text) noexcept;

/// Standard base64 with padding.
std::string base64(std::string_view bytes);

/// True for JSON media types: application/json and any "+json" suffix.
bool is_json_content_type(std::string_view content_type) noexcept;

/// Adds the body of `resp` to `out`: "body" is parsed JSON when the
/// response says JSON and parses, else text; a body that is not UTF-8 is
/// "body": null plus "body_base64".
void put_body(json& out, const http_response& resp);

/// The first `max` characters of a body for an error message (UTF-8 safe
/// enough: cut at a character boundary), with "..." when cut.
std::string body_excerpt(std::string_view body, size_t max = 300);

} // namespace cadre::tools::net
