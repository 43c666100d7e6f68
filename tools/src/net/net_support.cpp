#include "net/net_support.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <new>

#include <curl/curl.h>

#include "cadre/messages/utf8.hpp"
#include "codec/base64.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools::net {

namespace {

/// A millisecond setting's schema: [1, a day].
json ms_setting(std::chrono::milliseconds fallback, const char* description) {
  return detail::integer_setting(static_cast<uint64_t>(fallback.count()), 1,
                                 24ull * 3600 * 1000, description);
}

std::chrono::milliseconds ms(const json& settings, const char* key,
                             std::chrono::milliseconds fallback) {
  return std::chrono::milliseconds{detail::setting<int64_t>(
    settings, key, fallback.count())};
}

} // namespace

json net_settings_properties(const net_options& defaults) {
  return json{
    {"allowed_hosts",
     {{"type", "array"},
      {"items", {{"type", "string"}, {"minLength", 1}}},
      {"description", "Host names every hop must match. Default: any."}}},
    {"allow_private",
     detail::bool_setting(defaults.policy.allow_private,
                          "Allow loopback and private addresses.")},
    {"allow_link_local",
     detail::bool_setting(defaults.policy.allow_link_local,
                          "Allow link-local addresses.")},
    {"connect_timeout_ms",
     ms_setting(defaults.connect_timeout, "Time to connect.")},
    {"timeout_ms", ms_setting(defaults.timeout, "Time for one attempt, "
                                                "redirects included.")},
    {"max_redirects", detail::integer_setting(defaults.max_redirects, 0, 50,
                                              "Redirects followed.")},
    {"max_response_bytes",
     detail::integer_setting(defaults.max_response_bytes, 1,
                             uint64_t{1} << 32, "Largest response body.")},
    {"max_attempts", detail::integer_setting(defaults.retry.max_attempts, 1,
                                             20, "Attempts in all (1: no "
                                                 "retry).")},
    {"retry_base_ms", ms_setting(defaults.retry.base_delay, "First "
                                                            "backoff.")},
    {"retry_max_ms", ms_setting(defaults.retry.max_delay,
                                "Longest wait between attempts.")},
  };
}

net_options parse_net_options(std::string_view tool, const json& settings,
                              net_options defaults) {
  net_options out = std::move(defaults);
  if (auto i = settings.find("allowed_hosts");
      i != settings.end() && !i->is_null())
    out.policy.allowed_hosts = i->get<std::vector<std::string>>();
  out.policy.allow_private = detail::setting(settings, "allow_private",
                                             out.policy.allow_private);
  out.policy.allow_loopback = out.policy.allow_private;
  out.policy.allow_link_local = detail::setting(settings, "allow_link_local",
                                                out.policy.allow_link_local);
  out.policy.settings_prefix = "tools." + std::string{tool} + ".";
  out.connect_timeout = ms(settings, "connect_timeout_ms",
                           out.connect_timeout);
  out.timeout = ms(settings, "timeout_ms", out.timeout);
  out.max_redirects = detail::setting(settings, "max_redirects",
                                      out.max_redirects);
  out.max_response_bytes = detail::setting(settings, "max_response_bytes",
                                           out.max_response_bytes);
  out.retry.max_attempts = detail::setting(settings, "max_attempts",
                                           out.retry.max_attempts);
  out.retry.base_delay = ms(settings, "retry_base_ms", out.retry.base_delay);
  out.retry.max_delay = ms(settings, "retry_max_ms", out.retry.max_delay);
  return out;
}

http_request make_request(const net_options& opts, const tool_context& ctx) {
  http_request req;
  req.connect_timeout = opts.connect_timeout;
  req.timeout = opts.timeout;
  req.max_redirects = opts.max_redirects;
  req.max_response_bytes = opts.max_response_bytes;
  req.policy = opts.policy;
  req.cancel_flag = ctx.cancel_flag;
  req.deadline_us = ctx.deadline_us;
  return req;
}

caf::error tool_error(std::string_view tool, const caf::error& err) {
  return make_error(code_of(err),
                    "tool " + std::string{tool} + ": " + message_of(err));
}

std::string url_encode(std::string_view text) {
  // curl's escaping: unreserved characters as they are, the rest %XX. The
  // handle is unused (curl 7.82 and later). Its length is an int (0 meaning
  // strlen), so an empty text is answered here and a long one in pieces.
  constexpr size_t piece = size_t{1} << 30;
  std::string out;
  for (size_t at = 0; at < text.size(); at += piece) {
    auto part = text.substr(at, piece);
    std::unique_ptr<char, decltype(&curl_free)> escaped{
      curl_easy_escape(nullptr, part.data(), static_cast<int>(part.size())),
      &curl_free};
    if (!escaped)
      throw std::bad_alloc{};
    out += escaped.get();
  }
  return out;
}

std::string append_query(std::string_view url, std::string_view pairs) {
  if (pairs.empty())
    return std::string{url};
  auto hash = url.find('#');
  auto base = url.substr(0, hash);
  std::string out{base};
  if (base.find('?') == std::string_view::npos)
    out += '?';
  else if (out.back() != '?' && out.back() != '&')
    out += '&';
  out += pairs;
  if (hash != std::string_view::npos)
    out += url.substr(hash);
  return out;
}

bool valid_utf8(std::string_view text) noexcept {
  return cadre::valid_utf8(text);
}

std::string base64(std::string_view bytes) {
  return detail::base64_encode(bytes);
}

bool is_json_content_type(std::string_view content_type) noexcept {
  auto type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ')
    type.remove_suffix(1);
  if (iequals(type, "application/json"))
    return true;
  return type.size() > 5 && iequals(type.substr(type.size() - 5), "+json");
}

void put_body(json& out, const http_response& resp) {
  const auto* type = resp.headers.find("content-type");
  if (type && is_json_content_type(*type) && !resp.body.empty()) {
    auto doc = try_parse_json(resp.body);
    if (!doc.is_discarded()) {
      out["body"] = std::move(doc);
      return;
    }
  }
  if (valid_utf8(resp.body)) {
    out["body"] = resp.body;
  } else {
    out["body"] = nullptr;
    out["body_base64"] = base64(resp.body);
  }
}

std::string body_excerpt(std::string_view body, size_t max) {
  auto head = utf8_excerpt(body, max);
  return valid_utf8(head) ? head : "<binary>";
}

} // namespace cadre::tools::net
