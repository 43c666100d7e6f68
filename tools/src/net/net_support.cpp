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

/// Reads a millisecond setting in [1, max].
expected<std::chrono::milliseconds>
ms_setting(std::string_view tool, const json& settings, const std::string& key,
           std::chrono::milliseconds fallback,
           uint64_t max = 24ull * 3600 * 1000) {
  auto x = detail::uint_setting(tool, settings, key,
                                static_cast<uint64_t>(fallback.count()), 1,
                                max);
  if (!x)
    return std::move(x.error());
  return std::chrono::milliseconds{static_cast<int64_t>(*x)};
}

} // namespace

expected<net_options> parse_net_options(std::string_view tool,
                                        const json& settings,
                                        net_options defaults) {
  net_options out = std::move(defaults);
  if (auto i = settings.find("allowed_hosts");
      i != settings.end() && !i->is_null()) {
    if (!i->is_array())
      return detail::settings_error(tool, "allowed_hosts",
                                    "must be an array of host names");
    out.policy.allowed_hosts.clear();
    for (const auto& host : *i) {
      if (!host.is_string() || host.get<std::string>().empty())
        return detail::settings_error(tool, "allowed_hosts",
                                      "must be an array of host names");
      out.policy.allowed_hosts.push_back(host.get<std::string>());
    }
  }
  auto priv = bool_setting(tool, settings, "allow_private",
                           out.policy.allow_private);
  if (!priv)
    return std::move(priv.error());
  out.policy.allow_private = *priv;
  out.policy.allow_loopback = *priv;
  auto link = bool_setting(tool, settings, "allow_link_local",
                           out.policy.allow_link_local);
  if (!link)
    return std::move(link.error());
  out.policy.allow_link_local = *link;
  out.policy.settings_prefix = "tools." + std::string{tool} + ".";
  auto connect = ms_setting(tool, settings, "connect_timeout_ms",
                            out.connect_timeout);
  if (!connect)
    return std::move(connect.error());
  out.connect_timeout = *connect;
  auto timeout = ms_setting(tool, settings, "timeout_ms", out.timeout);
  if (!timeout)
    return std::move(timeout.error());
  out.timeout = *timeout;
  auto redirects = detail::uint_setting(tool, settings, "max_redirects",
                                        out.max_redirects, 0, 50);
  if (!redirects)
    return std::move(redirects.error());
  out.max_redirects = static_cast<uint32_t>(*redirects);
  auto bytes = detail::uint_setting(tool, settings, "max_response_bytes",
                                    out.max_response_bytes, 1,
                                    uint64_t{1} << 32);
  if (!bytes)
    return std::move(bytes.error());
  out.max_response_bytes = *bytes;
  auto attempts = detail::uint_setting(tool, settings, "max_attempts",
                                       out.retry.max_attempts, 1, 20);
  if (!attempts)
    return std::move(attempts.error());
  out.retry.max_attempts = static_cast<uint32_t>(*attempts);
  auto base = ms_setting(tool, settings, "retry_base_ms",
                         out.retry.base_delay);
  if (!base)
    return std::move(base.error());
  out.retry.base_delay = *base;
  auto max_delay = ms_setting(tool, settings, "retry_max_ms",
                              out.retry.max_delay);
  if (!max_delay)
    return std::move(max_delay.error());
  out.retry.max_delay = *max_delay;
  return out;
}

expected<void> check_setting_keys(std::string_view tool, const json& settings,
                                  std::initializer_list<std::string_view> extra) {
  for (const auto& item : settings.items()) {
    // Not a structured binding: clang before 16 cannot capture one.
    const auto& key = item.key();
    auto known = [&](const auto& keys) {
      return std::find(keys.begin(), keys.end(), key) != keys.end();
    };
    if (known(net_setting_keys) || known(extra))
      continue;
    std::string list;
    for (auto k : extra)
      list += std::string{list.empty() ? "" : ", "} + std::string{k};
    for (auto k : net_setting_keys)
      list += std::string{list.empty() ? "" : ", "} + std::string{k};
    return detail::settings_error(tool, key,
                                  "unknown setting (expected one of: " + list
                                    + ")");
  }
  return {};
}

expected<bool> bool_setting(std::string_view tool, const json& settings,
                            const std::string& key, bool fallback) {
  auto i = settings.find(key);
  if (i == settings.end() || i->is_null())
    return fallback;
  if (!i->is_boolean())
    return detail::settings_error(tool, key, "must be true or false");
  return i->get<bool>();
}

expected<std::string> string_setting(std::string_view tool,
                                     const json& settings,
                                     const std::string& key,
                                     std::string fallback) {
  auto i = settings.find(key);
  if (i == settings.end() || i->is_null())
    return fallback;
  if (!i->is_string())
    return detail::settings_error(tool, key, "must be a string");
  return i->get<std::string>();
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
