#include "cadre/tools/net/http_client.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <netinet/in.h>
#include <random>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>

#include <curl/curl.h>

namespace cadre::tools::net {

namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view x) {
  std::string out{x};
  for (auto& c : out)
    c = lower(c);
  return out;
}

std::string_view trim(std::string_view x) {
  while (!x.empty() && (x.front() == ' ' || x.front() == '\t'))
    x.remove_prefix(1);
  while (!x.empty()
         && (x.back() == ' ' || x.back() == '\t' || x.back() == '\r'
             || x.back() == '\n'))
    x.remove_suffix(1);
  return x;
}

int64_t wall_now_us() {
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

/// curl_global_init is not safe to race with other curl calls: run it once.
CURLcode global_init() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  return rc;
}

// -- address classification ---------------------------------------------------

enum class addr_class { global, loopback, private_net, link_local, reserved };

addr_class classify_v4(uint32_t a) {
  auto in = [a](uint32_t net, int bits) {
    uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  if (in(0x7f000000, 8) || in(0x00000000, 8))
    return addr_class::loopback;
  if (in(0x0a000000, 8) || in(0xac100000, 12) || in(0xc0a80000, 16)
      || in(0x64400000, 10) || in(0xc6120000, 15))
    return addr_class::private_net;
  if (in(0xa9fe0000, 16))
    return addr_class::link_local;
  if (in(0xe0000000, 4) || in(0xf0000000, 4))
    return addr_class::reserved; // multicast, reserved, broadcast
  return addr_class::global;
}

uint32_t v4_at(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8)
         | uint32_t{p[3]};
}

addr_class classify_v6(const unsigned char* b) {
  static constexpr unsigned char zero[16] = {};
  auto prefix_zero = [&](size_t n) { return std::memcmp(b, zero, n) == 0; };
  if (prefix_zero(16))
    return addr_class::loopback; // ::, this host
  if (prefix_zero(15) && b[15] == 1)
    return addr_class::loopback; // ::1
  // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d reach the
  // IPv4 address; NAT64 64:ff9b::/96 and 6to4 2002::/16 embed one.
  if (prefix_zero(10) && b[10] == 0xff && b[11] == 0xff)
    return classify_v4(v4_at(b + 12));
  if (prefix_zero(12))
    return classify_v4(v4_at(b + 12));
  static constexpr unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (std::memcmp(b, nat64, 12) == 0)
    return classify_v4(v4_at(b + 12));
  if (b[0] == 0x20 && b[1] == 0x02)
    return classify_v4(v4_at(b + 2));
  if ((b[0] & 0xfe) == 0xfc)
    return addr_class::private_net; // fc00::/7
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
    return addr_class::link_local; // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
    return addr_class::private_net; // fec0::/10, deprecated site-local
  if (b[0] == 0xff)
    return addr_class::reserved; // multicast
  return addr_class::global;
}

// -- URL handling -------------------------------------------------------------

struct url_parts {
  std::string scheme;
  std::string host; // IPv6 in brackets, as curl gives it
  std::string port; // explicit or the scheme's default
};

/// Parses an absolute URL with curl's own parser, so the host checked is
/// the host curl connects to.
std::optional<url_parts> parse_url(const std::string& url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u{curl_url(),
                                                        &curl_url_cleanup};
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
    return std::nullopt;
  url_parts out;
  auto get = [&](CURLUPart part, std::string& dst, unsigned flags) {
    char* s = nullptr;
    if (curl_url_get(u.get(), part, &s, flags) != CURLUE_OK || !s)
      return false;
    dst = s;
    curl_free(s);
    return true;
  };
  if (!get(CURLUPART_SCHEME, out.scheme, 0))
    return std::nullopt;
  // A URL without host or port (file:///x) parses; the caller rejects it.
  get(CURLUPART_HOST, out.host, 0);
  get(CURLUPART_PORT, out.port, CURLU_DEFAULT_PORT);
  out.scheme = to_lower(out.scheme);
  return out;
}

std::string strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return std::string{host};
}

std::string normal_host(std::string_view host) {
  auto out = to_lower(strip_brackets(host));
  if (!out.empty() && out.back() == '.')
    out.pop_back();
  return out;
}

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307
         || status == 308;
}

bool is_token(std::string_view x) {
  if (x.empty())
    return false;
  for (unsigned char c : x) {
    bool ok = std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
    if (!ok || c == 0)
      return false;
  }
  return true;
}

bool has_line_break(std::string_view x) {
  return x.find_first_of("\r\n") != std::string_view::npos
         || x.find('\0') != std::string_view::npos;
}

// -- one hop ------------------------------------------------------------------

enum class stop_reason {
  none,
  too_large,
  sink,
  cancelled,
  deadline,
  idle,
  blocked,
  body_file
};

/// State shared with curl's callbacks during one hop.
struct transfer {
  CURL* handle = nullptr;
  const http_request* req = nullptr;
  http_response* resp = nullptr;
  bool may_follow = false;
  uint64_t bytes = 0;
  enum class route { unknown, discard, sink, collect } body_route
    = route::unknown;
  stop_reason why = stop_reason::none;
  std::string blocked; // why an address was refused
  std::FILE* body_file = nullptr; // the body, read as it is sent
  // When the last body byte arrived (the hop's start before the first).
  steady_clock::time_point last_data = steady_clock::now();
  std::exception_ptr error;
};

size_t on_write(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<transfer*>(user);
  size_t len = size * count;
  try {
    if (t->body_route == transfer::route::unknown) {
      long status = 0;
      curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &status);
      if (t->may_follow && is_redirect(status)
          && t->resp->headers.contains("location"))
        t->body_route = transfer::route::discard;
      else if (t->req->on_body && status >= 200 && status < 300)
        t->body_route = transfer::route::sink;
      else
        t->body_route = transfer::route::collect;
    }
    t->bytes += len;
    t->last_data = steady_clock::now();
    if (t->bytes > t->req->max_response_bytes) {
      t->why = stop_reason::too_large;
      return 0;
    }
    switch (t->body_route) {
      case transfer::route::sink:
        if (!t->req->on_body(std::string_view{data, len})) {
          t->why = stop_reason::sink;
          return 0;
        }
        break;
      case transfer::route::collect:
        t->resp->body.append(data, len);
        break;
      default:
        break;
    }
    return len;
  } catch (...) {
    // An exception must not unwind through curl's C frames.
    t->error = std::current_exception();
    return 0;
  }
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<transfer*>(user);
  size_t len = size * count;
  try {
    std::string_view line{data, len};
    if (line.substr(0, 5) == "HTTP/") {
      // A new status line: 1xx responses come before the final one.
      t->resp->headers.clear();
      return len;
    }
    auto content = trim(line);
    if (content.empty())
      return len;
    // Obsolete line folding (deprecated by RFC 9110) is dropped.
    if (line.front() == ' ' || line.front() == '\t')
      return len;
    auto colon = content.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return len;
    t->resp->headers.add(std::string{trim(content.substr(0, colon))},
                         std::string{trim(content.substr(colon + 1))});
    return len;
  } catch (...) {
    t->error = std::current_exception();
    return 0;
  }
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<transfer*>(user);
  if (t->req->cancel_flag && t->req->cancel_flag->load()) {
    t->why = stop_reason::cancelled;
    return 1;
  }
  if (t->req->deadline_us != 0 && wall_now_us() >= t->req->deadline_us) {
    t->why = stop_reason::deadline;
    return 1;
  }
  if (t->req->idle_timeout.count() > 0
      && steady_clock::now() - t->last_data > t->req->idle_timeout) {
    t->why = stop_reason::idle;
    return 1;
  }
  return 0;
}

size_t on_read(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<transfer*>(user);
  auto n = std::fread(data, size, count, t->body_file);
  if (n == 0 && std::ferror(t->body_file)) {
    t->why = stop_reason::body_file;
    return CURL_READFUNC_ABORT;
  }
  return n;
}

// curl rewinds the body when it sends it again on a new connection.
int on_seek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<transfer*>(user);
  return ::fseeko(t->body_file, static_cast<off_t>(offset), origin) == 0
           ? CURL_SEEKFUNC_OK
           : CURL_SEEKFUNC_CANTSEEK;
}

std::string sockaddr_text(const curl_sockaddr* a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a->family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, &a->addr, std::min<size_t>(a->addrlen, sizeof in));
    inet_ntop(AF_INET, &in.sin_addr, buf, sizeof buf);
  } else if (a->family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &a->addr, std::min<size_t>(a->addrlen, sizeof in6));
    inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof buf);
  }
  return buf;
}

/// Every new connection passes here with the address about to be
/// connected: the SSRF check happens before a packet leaves.
curl_socket_t on_open_socket(void* user, curlsocktype purpose,
                             curl_sockaddr* addr) {
  auto* t = static_cast<transfer*>(user);
  try {
    if (purpose != CURLSOCKTYPE_IPCXN || (addr->family != AF_INET
                                          && addr->family != AF_INET6)) {
      t->why = stop_reason::blocked;
      t->blocked = "only IP connections are allowed";
      return CURL_SOCKET_BAD;
    }
    auto ip = sockaddr_text(addr);
    if (auto why = address_refusal(ip, t->req->policy)) {
      t->why = stop_reason::blocked;
      t->blocked = std::move(*why);
      return CURL_SOCKET_BAD;
    }
  } catch (...) {
    t->error = std::current_exception();
    return CURL_SOCKET_BAD;
  }
  return ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/// Runs before each request, on new and on reused connections: a kept-alive
/// connection opened under another request's policy is checked again.
int on_prereq(void* user, char* primary_ip, char*, int, int) {
  auto* t = static_cast<transfer*>(user);
  try {
    if (auto why = address_refusal(primary_ip ? primary_ip : "",
                                   t->req->policy)) {
      t->why = stop_reason::blocked;
      t->blocked = std::move(*why);
      return CURL_PREREQFUNC_ABORT;
    }
  } catch (...) {
    t->error = std::current_exception();
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

struct slist_deleter {
  void operator()(curl_slist* x) const noexcept {
    curl_slist_free_all(x);
  }
};
using slist_ptr = std::unique_ptr<curl_slist, slist_deleter>;

struct file_closer {
  void operator()(std::FILE* f) const noexcept {
    std::fclose(f);
  }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

} // namespace

// -- http_headers -------------------------------------------------------------

bool iequals(std::string_view x, std::string_view y) noexcept {
  if (x.size() != y.size())
    return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (lower(x[i]) != lower(y[i]))
      return false;
  return true;
}

void http_headers::add(std::string name, std::string value) {
  entries_.emplace_back(std::move(name), std::move(value));
}

void http_headers::set(std::string name, std::string value) {
  remove(name);
  add(std::move(name), std::move(value));
}

void http_headers::remove(std::string_view name) {
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const entry& e) {
                                  return iequals(e.first, name);
                                }),
                 entries_.end());
}

const std::string* http_headers::find(std::string_view name) const {
  for (const auto& [key, value] : entries_)
    if (iequals(key, name))
      return &value;
  return nullptr;
}

std::optional<std::string> http_headers::joined(std::string_view name) const {
  std::optional<std::string> out;
  for (const auto& [key, value] : entries_) {
    if (!iequals(key, name))
      continue;
    if (out)
      *out += ", " + value;
    else
      out = value;
  }
  return out;
}

// -- policy -------------------------------------------------------------------

std::optional<std::string> address_refusal(std::string_view ip,
                                           const ssrf_policy& policy) {
  auto text = strip_brackets(ip);
  if (auto pct = text.find('%'); pct != std::string::npos)
    text.erase(pct); // zone index of a link-local address
  addr_class cls;
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1)
    cls = classify_v4(v4_at(buf));
  else if (inet_pton(AF_INET6, text.c_str(), buf) == 1)
    cls = classify_v6(buf);
  else
    return std::string{"'"} + std::string{ip} + "' is not an IP address";
  std::string what, setting;
  switch (cls) {
    case addr_class::global:
      return std::nullopt;
    case addr_class::loopback:
      if (policy.allow_loopback)
        return std::nullopt;
      what = "a loopback address";
      setting = "allow_private";
      break;
    case addr_class::private_net:
      if (policy.allow_private)
        return std::nullopt;
      what = "a private address";
      setting = "allow_private";
      break;
    case addr_class::link_local:
      if (policy.allow_link_local)
        return std::nullopt;
      what = "a link-local address";
      setting = "allow_link_local";
      break;
    case addr_class::reserved:
      return "address " + text + " is a multicast or reserved address, "
             + "which is never allowed";
  }
  auto msg = "address " + text + " is " + what + ", which the policy refuses";
  if (!policy.settings_prefix.empty())
    msg += " (allowed by " + policy.settings_prefix + setting + ")";
  return msg;
}

bool host_allowed(std::string_view host,
                  const std::vector<std::string>& allowed) {
  if (allowed.empty())
    return true;
  auto h = normal_host(host);
  for (const auto& entry : allowed) {
    auto e = normal_host(entry);
    if (e.size() > 2 && e[0] == '*' && e[1] == '.') {
      auto suffix = std::string_view{e}.substr(1); // ".example.com"
      if (h.size() > suffix.size()
          && std::string_view{h}.substr(h.size() - suffix.size()) == suffix)
        return true;
    } else if (h == e) {
      return true;
    }
  }
  return false;
}

std::string redact_url(std::string_view url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u{curl_url(),
                                                        &curl_url_cleanup};
  std::string text{url};
  if (u && curl_url_set(u.get(), CURLUPART_URL, text.c_str(), 0) == CURLUE_OK) {
    curl_url_set(u.get(), CURLUPART_USER, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_PASSWORD, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_OPTIONS, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_QUERY, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_FRAGMENT, nullptr, 0);
    char* s = nullptr;
    if (curl_url_get(u.get(), CURLUPART_URL, &s, 0) == CURLUE_OK && s) {
      std::string out = s;
      curl_free(s);
      return out;
    }
  }
  // Not a URL curl can parse: cut at the first '?' or '#', drop user info.
  text = text.substr(0, text.find_first_of("?#"));
  if (auto at = text.find('@'); at != std::string::npos) {
    auto start = text.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    if (at > start)
      text.erase(start, at + 1 - start);
  }
  return text;
}

std::string url_origin(std::string_view url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u{curl_url(),
                                                        &curl_url_cleanup};
  std::string text{url};
  if (!u || curl_url_set(u.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK)
    return "<invalid URL>";
  auto part = [&](CURLUPart which) {
    char* s = nullptr;
    std::string out;
    if (curl_url_get(u.get(), which, &s, 0) == CURLUE_OK && s) {
      out = s;
      curl_free(s);
    }
    return out;
  };
  auto scheme = part(CURLUPART_SCHEME);
  auto host = part(CURLUPART_HOST);
  if (scheme.empty() || host.empty())
    return "<invalid URL>";
  auto port = part(CURLUPART_PORT); // empty unless given explicitly
  return scheme + "://" + host + (port.empty() ? "" : ":" + port);
}

// -- http_client --------------------------------------------------------------

struct http_client::impl {
  CURL* handle = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};

  ~impl() {
    if (handle)
      curl_easy_cleanup(handle);
  }
};

http_client::http_client() : impl_(std::make_unique<impl>()) {
}

http_client::~http_client() = default;

namespace {

/// Converts a failed hop into a cadre error; `what` is "METHOD url".
caf::error hop_error(CURLcode rc, const transfer& t, const std::string& what,
                     const http_request& req, const char* errbuf,
                     bool deadline_bound, milliseconds limit,
                     CURL* handle) {
  std::string detail = errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc);
  auto fail = [&](errc code, std::string msg) {
    return make_error(code, what + ": " + std::move(msg));
  };
  auto blocked = [&] {
    return fail(errc::invalid_input, t.blocked);
  };
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return fail(errc::unavailable, "DNS lookup failed (" + detail + ")");
    case CURLE_COULDNT_CONNECT:
      if (t.why == stop_reason::blocked)
        return blocked();
      return fail(errc::unavailable, "connection refused (" + detail + ")");
    case CURLE_OPERATION_TIMEDOUT: {
      if (deadline_bound)
        return fail(errc::timeout,
                    "the deadline passed before the exchange finished");
      curl_off_t connect_us = 0;
      curl_easy_getinfo(handle, CURLINFO_CONNECT_TIME_T, &connect_us);
      if (connect_us == 0)
        return fail(errc::timeout,
                    "could not connect within "
                      + std::to_string(std::min(limit, req.connect_timeout)
                                         .count())
                      + " ms (connect timeout)");
      return fail(errc::timeout, "no complete response within "
                                   + std::to_string(req.timeout.count())
                                   + " ms (timeout)");
    }
    case CURLE_ABORTED_BY_CALLBACK:
      switch (t.why) {
        case stop_reason::blocked:
          return blocked();
        case stop_reason::deadline:
          return fail(errc::timeout,
                      "the deadline passed before the exchange finished");
        case stop_reason::idle:
          return fail(errc::timeout,
                      "nothing received for "
                        + std::to_string(req.idle_timeout.count())
                        + " ms (idle timeout)");
        case stop_reason::body_file:
          return fail(errc::tool_failed, "reading the body file "
                                         + req.body_file + " failed");
        default:
          return fail(errc::cancelled, "cancelled");
      }
    case CURLE_WRITE_ERROR:
      if (t.why == stop_reason::too_large)
        return fail(errc::tool_failed,
                    "response body exceeds the limit of "
                      + std::to_string(req.max_response_bytes) + " bytes");
      if (t.why == stop_reason::sink)
        return fail(errc::cancelled, "the body consumer stopped the transfer");
      return fail(errc::tool_failed, detail);
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return fail(errc::unavailable, "connection failed (" + detail + ")");
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return fail(errc::invalid_input, "bad URL (" + detail + ")");
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return fail(errc::tool_failed, "TLS failed (" + detail + ")");
    default:
      return fail(errc::tool_failed, detail);
  }
}

} // namespace

expected<http_response> http_client::perform(const http_request& req) {
  auto start = steady_clock::now();
  std::string method = req.method;
  std::string url = req.url;
  std::string body = req.body;
  std::string body_file = req.body_file;
  http_headers headers = req.headers;
  auto what = [&] {
    return method + " "
           + (req.display_url.empty() ? redact_url(url) : req.display_url);
  };
  auto fail = [&](errc code, std::string msg) {
    return make_error(code, what() + ": " + std::move(msg));
  };
  if (global_init() != CURLE_OK)
    return fail(errc::internal, "curl_global_init failed");
  if (!impl_->handle) {
    impl_->handle = curl_easy_init();
    if (!impl_->handle)
      return fail(errc::internal, "curl_easy_init failed");
  }
  if (!is_token(method))
    return make_error(errc::invalid_input,
                      "HTTP method '" + method + "' is not a valid token");
  for (const auto& [name, value] : headers.entries())
    if (!is_token(name) || has_line_break(value))
      return fail(errc::invalid_input,
                  "header '" + name + "' has an invalid name or value");
  if (method == "HEAD" && (!body.empty() || !body_file.empty()))
    return fail(errc::invalid_input, "a HEAD request cannot have a body");
  if (!body.empty() && !body_file.empty())
    return fail(errc::invalid_input, "a body and a body file: send one");

  // The exchange ends at the earlier of timeout and deadline.
  auto end = start + req.timeout;
  bool deadline_bound = false;
  if (req.deadline_us != 0) {
    auto left = microseconds{std::max<int64_t>(req.deadline_us - wall_now_us(),
                                               0)};
    if (start + left < end) {
      end = start + left;
      deadline_bound = true;
    }
  }

  http_response resp;
  CURL* h = impl_->handle;
  for (;;) {
    auto parts = parse_url(url);
    if (!parts)
      return fail(errc::invalid_input, "not an absolute URL");
    if (parts->scheme != "http" && parts->scheme != "https")
      return fail(errc::invalid_input, "scheme '" + parts->scheme
                                         + "' is not allowed (http, https)");
    if (parts->host.empty())
      return fail(errc::invalid_input, "the URL has no host");
    if (!host_allowed(parts->host, req.policy.allowed_hosts)) {
      std::string list;
      for (const auto& x : req.policy.allowed_hosts)
        list += (list.empty() ? "" : ", ") + x;
      return fail(errc::invalid_input,
                  "host '" + strip_brackets(parts->host)
                    + "' is not in the allowed hosts (" + list + ")"
                    + (req.policy.settings_prefix.empty()
                         ? std::string{}
                         : " (" + req.policy.settings_prefix
                             + "allowed_hosts)"));
    }
    auto now = steady_clock::now();
    if (now >= end) {
      if (deadline_bound)
        return fail(errc::timeout,
                    "the deadline passed before the exchange finished");
      return fail(errc::timeout, "no complete response within "
                                   + std::to_string(req.timeout.count())
                                   + " ms (timeout)");
    }
    auto left = duration_cast<milliseconds>(end - now);
    if (left.count() < 1)
      left = milliseconds{1};

    resp.headers.clear();
    resp.body.clear();
    transfer t;
    t.handle = h;
    t.req = &req;
    t.resp = &resp;
    t.may_follow = req.max_redirects > 0;

    slist_ptr list;
    auto append = [&](const std::string& line) {
      auto* next = curl_slist_append(list.get(), line.c_str());
      if (!next)
        return false;
      (void) list.release();
      list.reset(next);
      return true;
    };
    bool with_body = !body.empty() || !body_file.empty() || method == "POST"
                     || method == "PUT" || method == "PATCH";
    file_ptr file;
    curl_off_t file_size = 0;
    if (!body_file.empty()) {
      file.reset(std::fopen(body_file.c_str(), "rb"));
      struct stat st{};
      if (!file || ::fstat(::fileno(file.get()), &st) != 0)
        return fail(errc::invalid_input, "cannot open the body file "
                                           + body_file + ": "
                                           + std::strerror(errno));
      file_size = static_cast<curl_off_t>(st.st_size);
      t.body_file = file.get();
    }
    bool ok = true;
    for (const auto& [name, value] : headers.entries())
      ok = ok && append(value.empty() ? name + ";" : name + ": " + value);
    // No "Expect: 100-continue" round trip, and no form content type
    // that curl would otherwise add to a body.
    if (!headers.contains("expect"))
      ok = ok && append("Expect:");
    if (with_body && !headers.contains("content-type"))
      ok = ok && append("Content-Type:");
    if (!ok)
      return fail(errc::internal, "out of memory for headers");

    curl_easy_reset(h);
    impl_->errbuf[0] = 0;
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, impl_->errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    // A proxy would hide the real peer from the address check, and
    // environment variables must not redirect traffic silently.
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(left, req.connect_timeout)
                                         .count()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
    if (!headers.contains("accept-encoding"))
      curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (!headers.contains("user-agent"))
      curl_easy_setopt(h, CURLOPT_USERAGENT, "cadre");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
    if (method == "GET" && body.empty() && !file) {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
      if (file) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, file_size);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, &on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &t);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
      } else if (with_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(body.size()));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
      }
      if (method != "POST" || !with_body)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, &on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, &t);

    auto rc = curl_easy_perform(h);
    // Nothing may point at this hop's locals once it is over.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    if (t.error)
      std::rethrow_exception(t.error);
    if (rc != CURLE_OK)
      return hop_error(rc, t, what(), req, impl_->errbuf, deadline_bound, left,
                       h);

    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    char* effective = nullptr;
    curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &effective);
    char* ip = nullptr;
    curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip);
    curl_off_t first_byte_us = 0;
    curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME_T, &first_byte_us);
    resp.status = status;
    resp.url = effective ? effective : url;
    resp.remote_address = ip ? ip : "";
    resp.first_byte = microseconds{first_byte_us};

    char* location = nullptr;
    curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location);
    if (!is_redirect(status) || !location || req.max_redirects == 0)
      break;
    std::string next = location;
    if (resp.redirects >= req.max_redirects)
      return fail(errc::tool_failed,
                  "more than " + std::to_string(req.max_redirects)
                    + " redirects"
                    + (req.display_url.empty()
                         ? " (the next one to " + redact_url(next) + ")"
                         : std::string{}));
    // Browsers' and curl's rules: 303 turns into GET, and so do 301 and
    // 302 after a POST; 307 and 308 repeat the request as it was.
    if ((status == 303 && method != "HEAD")
        || ((status == 301 || status == 302) && method == "POST")) {
      method = "GET";
      body.clear();
      body_file.clear();
      headers.remove("content-type");
      headers.remove("content-length");
    }
    auto next_parts = parse_url(next);
    if (!next_parts || next_parts->scheme != parts->scheme
        || !iequals(next_parts->host, parts->host)
        || next_parts->port != parts->port) {
      // Credentials stay with the origin they were meant for.
      headers.remove("authorization");
      headers.remove("cookie");
      headers.remove("proxy-authorization");
    }
    ++resp.redirects;
    url = std::move(next);
  }
  resp.elapsed = duration_cast<microseconds>(steady_clock::now() - start);
  return resp;
}

// -- retries ------------------------------------------------------------------

bool retryable_status(long status) noexcept {
  return status == 429 || (status >= 500 && status <= 599 && status != 501
                           && status != 505);
}

bool retryable_error(const caf::error& err) noexcept {
  return code_of(err) == errc::unavailable;
}

std::optional<milliseconds>
parse_retry_after(std::string_view value, system_clock::time_point now) {
  value = trim(value);
  if (value.empty())
    return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    // Beyond ten digits is centuries: clamp instead of overflowing.
    if (value.size() > 10)
      return milliseconds{std::numeric_limits<int64_t>::max() / 2};
    return milliseconds{std::stoll(std::string{value}) * 1000};
  }
  std::string text{value};
  auto when = curl_getdate(text.c_str(), nullptr);
  if (when == -1)
    return std::nullopt;
  auto at = system_clock::from_time_t(when);
  if (at <= now)
    return milliseconds{0};
  return duration_cast<milliseconds>(at - now);
}

namespace {

milliseconds backoff(const retry_policy& policy, uint32_t retry) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter{0.5, 1.0};
  double base = static_cast<double>(policy.base_delay.count());
  double exp = base * std::pow(2.0, std::min<uint32_t>(retry - 1, 40));
  double capped = std::min(exp, static_cast<double>(policy.max_delay.count()));
  return milliseconds{static_cast<int64_t>(capped * jitter(rng))};
}

caf::error with_attempts(const caf::error& err, uint32_t attempts) {
  if (attempts <= 1)
    return err;
  return make_error(code_of(err), message_of(err) + " (after "
                                    + std::to_string(attempts)
                                    + " attempts)");
}

} // namespace

expected<http_response> perform_with_retry(http_client& client,
                                           const http_request& req,
                                           const retry_policy& policy,
                                           retry_sleeper sleeper) {
  if (!sleeper) {
    sleeper = [flag = req.cancel_flag](milliseconds ms) {
      auto until = steady_clock::now() + ms;
      for (;;) {
        if (flag && flag->load())
          return false;
        auto now = steady_clock::now();
        if (now >= until)
          return true;
        std::this_thread::sleep_for(
          std::min<steady_clock::duration>(until - now, milliseconds{10}));
      }
    };
  }
  http_request attempt = req;
  bool streamed = false;
  if (req.on_body)
    attempt.on_body = [&](std::string_view chunk) {
      streamed = true;
      return req.on_body(chunk);
    };
  auto max_attempts = std::max<uint32_t>(policy.max_attempts, 1);
  for (uint32_t n = 1;; ++n) {
    streamed = false;
    auto result = client.perform(attempt);
    bool retry = false;
    std::optional<milliseconds> asked;
    if (result) {
      result->attempts = n;
      retry = retryable_status(result->status);
      if (auto* ra = result->headers.find("retry-after"))
        asked = parse_retry_after(*ra);
    } else {
      retry = retryable_error(result.error()) && !streamed;
    }
    auto give_up = [&]() -> expected<http_response> {
      if (result)
        return result;
      return with_attempts(result.error(), n);
    };
    if (!retry || n >= max_attempts)
      return give_up();
    if (asked && *asked > policy.max_delay)
      return give_up();
    auto delay = asked ? *asked : backoff(policy, n);
    if (req.deadline_us != 0
        && wall_now_us() + duration_cast<microseconds>(delay).count()
             >= req.deadline_us)
      return give_up();
    if (req.on_retry)
      req.on_retry(n,
                   // A code, not the message: it may quote a URL.
                   result ? "status " + std::to_string(result->status)
                          : to_string(code_of(result.error())),
                   delay);
    if ((req.cancel_flag && req.cancel_flag->load()) || !sleeper(delay))
      return make_error(errc::cancelled,
                        req.method + " "
                          + (req.display_url.empty() ? redact_url(req.url)
                                                     : req.display_url)
                          + ": cancelled while waiting to retry (after "
                          + std::to_string(n) + " attempts)");
  }
}

} // namespace cadre::tools::net
