#pragma once

// An HTTP client on libcurl for the tools that talk to the network (http,
// notify, search, the LLM providers) and for the `cadre` CLI talking to
// `cadre serve`: timeouts, a response size cap, redirects followed one hop
// at a time, an SSRF policy checked against every address a connection is
// opened to, cancellation, streaming, and a retry helper with backoff that
// honours Retry-After. The one HTTP client of cadre; no curl type appears
// here.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cadre/messages/error.hpp"

namespace cadre::tools::net {

/// An ordered list of header fields with case-insensitive lookup. Names keep
/// the spelling they were added with.
class http_headers {
public:
  using entry = std::pair<std::string, std::string>;

  /// Appends a field (a name may repeat).
  void add(std::string name, std::string value);

  /// Replaces every field named `name` with one field.
  void set(std::string name, std::string value);

  /// Removes every field named `name`.
  void remove(std::string_view name);

  /// The first value of `name`, or nullptr.
  const std::string* find(std::string_view name) const;

  bool contains(std::string_view name) const {
    return find(name) != nullptr;
  }

  /// All values of `name` joined with ", " (RFC 9110 field combination).
  std::optional<std::string> joined(std::string_view name) const;

  const std::vector<entry>& entries() const noexcept {
    return entries_;
  }
  size_t size() const noexcept {
    return entries_.size();
  }
  void clear() noexcept {
    entries_.clear();
  }

private:
  std::vector<entry> entries_;
};

/// ASCII case-insensitive equality, for header names and host names.
bool iequals(std::string_view x, std::string_view y) noexcept;

/// Which destinations a request may reach. `allowed_hosts` is checked
/// against the host of each URL (the first and every redirect); the address
/// ranges are checked against each address a connection is actually opened
/// to, after DNS, so neither a DNS answer nor a redirect reaches an address
/// that the URL hides.
struct ssrf_policy {
  /// Host names the request may reach (case-insensitive); "*.example.com"
  /// matches every subdomain of example.com, but not example.com itself.
  /// IP literals match as written ("127.0.0.1", "[::1]" or "::1").
  /// Empty: any host. Default: empty
  std::vector<std::string> allowed_hosts;
  /// Allow loopback: 127.0.0.0/8, ::1, and 0.0.0.0/8 and :: (this host).
  /// Default: false
  bool allow_loopback = false;
  /// Allow private ranges: 10/8, 172.16/12, 192.168/16, 100.64/10 (shared
  /// address space), 198.18/15, fc00::/7. Default: false
  bool allow_private = false;
  /// Allow link-local: 169.254/16 (where cloud metadata services live) and
  /// fe80::/10. Default: false
  bool allow_link_local = false;
  /// Prefix of the settings that lift a refusal, e.g. "tools.http.": a
  /// refusal then ends "(allowed by tools.http.allow_private)", as
  /// net_options maps those settings (allow_private also allows loopback).
  /// Default: empty, no such hint
  std::string settings_prefix;
};

/// Why `policy` refuses the IP address `ip` (textual IPv4 or IPv6, e.g.
/// "10.0.0.1 is a private address"), or nullopt when it allows it.
/// Multicast, broadcast and reserved addresses are always refused; an
/// IPv4-mapped IPv6 address is judged as its IPv4 address.
std::optional<std::string> address_refusal(std::string_view ip,
                                           const ssrf_policy& policy);

/// True when `host` (as in a URL, IPv6 in brackets or not) matches an entry
/// of `allowed` (see ssrf_policy::allowed_hosts); true for an empty list.
bool host_allowed(std::string_view host,
                  const std::vector<std::string>& allowed);

/// Drops the user info, query and fragment of `url`, so a message or a log
/// line carries no credentials or API keys: "https://h:8080/a/b".
std::string redact_url(std::string_view url);

/// "scheme://host[:port]" of `url`, for messages about URLs whose path is
/// a secret; "<invalid URL>" when it does not parse.
std::string url_origin(std::string_view url);

/// One HTTP exchange to perform.
struct http_request {
  /// Any token method; GET and HEAD send no body. Default: GET
  std::string method = "GET";
  /// Absolute http:// or https:// URL.
  std::string url;
  /// How the URL appears in error messages, for URLs whose path is a
  /// secret (webhooks). Empty: the URL of each hop through redact_url.
  /// Default: empty
  std::string display_url;
  /// Sent as given; a Content-Type is not added (curl's form default is
  /// suppressed). Default: none
  http_headers headers;
  /// Request body, sent when not empty or when the method is POST, PUT or
  /// PATCH. Default: empty
  std::string body;
  /// A file to send as the body instead of `body`: read as it is sent, with
  /// its size as Content-Length, so a body of gigabytes is never in memory.
  /// Each hop (a 307 or 308 redirect) and each attempt sends it from its
  /// start. Errors: errc::invalid_input when it cannot be opened,
  /// errc::tool_failed when reading it fails or it shrinks while sent.
  /// Default: none
  std::string body_file;
  /// Longest time to open a connection. Default: 10 s
  std::chrono::milliseconds connect_timeout{10'000};
  /// Longest time for the whole exchange, every redirect included.
  /// Default: 30 s
  std::chrono::milliseconds timeout{30'000};
  /// Longest time without a byte of the response body, counted from the
  /// start of each hop (errc::timeout): notices a silently dead stream
  /// whose server sends keep-alives. Checked about once a second; 0: none.
  /// Default: 0
  std::chrono::milliseconds idle_timeout{0};
  /// Redirects (301, 302, 303, 307, 308) followed at most; 0 returns the
  /// redirect response itself, and more than this many is an error.
  /// Default: 5
  uint32_t max_redirects = 5;
  /// Largest response body accepted (after content decoding); a larger one
  /// is an error. Default: 10 MiB
  uint64_t max_response_bytes = 10u << 20;
  /// Destinations allowed. Default: public addresses only, any host
  ssrf_policy policy;
  /// When set, the body of a 2xx final response is passed here chunk by
  /// chunk as it arrives (SSE, NDJSON) instead of being collected in
  /// http_response::body; returning false aborts the transfer
  /// (errc::cancelled). Bodies of other statuses are still collected, so an
  /// error document can be read. Default: none
  std::function<bool(std::string_view)> on_body;
  /// Checked while the transfer runs (at least once a second) and between
  /// retries; set means stop (errc::cancelled). Default: none
  std::shared_ptr<std::atomic<bool>> cancel_flag;
  /// Wall-clock deadline in microseconds since the epoch (as
  /// tool_context::deadline_us); bounds `timeout`. 0: none. Default: 0
  int64_t deadline_us = 0;
  /// perform_with_retry calls this before waiting to retry: the attempt that
  /// failed (1-based), why (a status or an error, never a body) and the
  /// wait. For a caller that logs retries with its own context. Default:
  /// none
  std::function<void(uint32_t, const std::string&, std::chrono::milliseconds)>
    on_retry;
};

/// The final response of an exchange (after redirects).
struct http_response {
  long status = 0;
  /// Header fields of the final response (not of redirects or 1xx).
  http_headers headers;
  /// The body, unless it was streamed to http_request::on_body.
  std::string body;
  /// The URL that answered (the last redirect target).
  std::string url;
  /// The address that answered, e.g. "127.0.0.1".
  std::string remote_address;
  /// Redirects followed.
  uint32_t redirects = 0;
  /// Attempts made (set by perform_with_retry; 1 for perform).
  uint32_t attempts = 1;
  /// Time for the whole exchange, redirects included.
  std::chrono::microseconds elapsed{0};
  /// Time from the start of the last hop to its first response byte.
  std::chrono::microseconds first_byte{0};
};

/// Performs requests on one reused curl handle, so connections and DNS
/// answers are kept alive between calls. Not thread-safe: one owner at a
/// time (a tool instance lives in one worker).
class http_client {
public:
  http_client();
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Performs `req`, following redirects as it allows. A response with any
  /// status is a success. Errors (each message names the method and the
  /// URL without query):
  /// - errc::invalid_input: malformed URL, scheme other than http(s), a host
  ///   not in allowed_hosts or an address the policy refuses (the message
  ///   says which address and why), also when reached by a redirect;
  /// - errc::unavailable: DNS failure, connection refused or reset, no
  ///   response (these are what perform_with_retry retries);
  /// - errc::timeout: connect timeout, total timeout or deadline;
  /// - errc::cancelled: the cancel flag was set or on_body returned false;
  /// - errc::tool_failed: response over max_response_bytes, too many
  ///   redirects, TLS and protocol errors.
  [[nodiscard]] expected<http_response> perform(const http_request& req);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// When and how often perform_with_retry tries again.
struct retry_policy {
  /// Attempts in all, the first included; 1 disables retries. Default: 3
  uint32_t max_attempts = 3;
  /// Backoff before retry n (1-based) is base_delay * 2^(n-1), scaled by a
  /// random factor in [0.5, 1] (jitter), capped at max_delay.
  /// Default: 250 ms
  std::chrono::milliseconds base_delay{250};
  /// Longest wait between attempts; a Retry-After asking for more ends the
  /// retries and the last response is returned. Default: 30 s
  std::chrono::milliseconds max_delay{30'000};
};

/// True for statuses worth retrying: 429 and 5xx except 501 and 505 (which
/// a retry does not change).
bool retryable_status(long status) noexcept;

/// True for errors worth retrying (errc::unavailable: DNS failure, refused
/// or reset connection, no response).
bool retryable_error(const caf::error& err) noexcept;

/// The wait a Retry-After value asks for: delta-seconds ("120") or an
/// HTTP-date relative to `now`; a date in the past gives 0. nullopt when
/// the value is neither.
std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value,
                  std::chrono::system_clock::time_point now
                  = std::chrono::system_clock::now());

/// Waits between attempts; returns false when the wait was interrupted
/// (cancelled). The default waits in slices that poll the request's cancel
/// flag.
using retry_sleeper = std::function<bool(std::chrono::milliseconds)>;

/// Performs `req`, and again after connection errors (retryable_error) and
/// retryable statuses, up to policy.max_attempts, waiting an exponential
/// backoff with jitter or what Retry-After asks. Stops early, returning the
/// last response or error, when the next wait would pass the request's
/// deadline; a cancel during a wait gives errc::cancelled. A connection
/// error after part of a streamed body went to on_body is not retried.
/// http_response::attempts tells how many attempts were made; an error
/// message says "after N attempts" when there were several.
[[nodiscard]] expected<http_response>
perform_with_retry(http_client& client, const http_request& req,
                   const retry_policy& policy, retry_sleeper sleeper = {});

} // namespace cadre::tools::net
