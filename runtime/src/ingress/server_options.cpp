#include "ingress/server_options.hpp"

#include <cstdlib>

#include "cadre/workflow/definition.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::runtime {

bool server_options::loopback() const {
  return host == "127.0.0.1" || host == "::1" || host == "localhost"
         || host.rfind("127.", 0) == 0;
}

std::string server_options::url() const {
  auto scheme = tls_cert_file.empty() ? "http://" : "https://";
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + h + ":" + std::to_string(port);
}

std::string parse_listen(const std::string& text, server_options& opts) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return "expected HOST:PORT, got '" + text + "'";
  auto host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port_text = text.substr(colon + 1);
  char* end = nullptr;
  auto port = std::strtol(port_text.c_str(), &end, 10);
  if (*end != '\0' || port < 0 || port > 65535)
    return "expected a port from 0 to 65535, got '" + port_text + "'";
  opts.host = host;
  opts.port = static_cast<int>(port);
  return {};
}

namespace {

caf::error bad(const std::string& key, const std::string& problem) {
  return make_error(errc::invalid_config, "server." + key + ": " + problem);
}

std::string type_name(const json& x) {
  return x.type_name();
}

} // namespace

expected<server_options> parse_server_options(const json& section) {
  server_options opts;
  if (section.is_null())
    return opts;
  if (!section.is_object())
    return bad("", "expected a mapping");
  auto duration = [&](const json& v, const std::string& key,
                      std::chrono::milliseconds& out) -> caf::error {
    int64_t ms = 0;
    if (auto problem = workflow::parse_duration(v, ms); !problem.empty())
      return bad(key, problem);
    out = std::chrono::milliseconds{ms};
    return {};
  };
  auto count = [&](const json& v, const std::string& key, size_t& out,
                   size_t min) -> caf::error {
    if (!v.is_number_integer() || v.get<int64_t>() < static_cast<int64_t>(min))
      return bad(key, "expected an integer of at least " + std::to_string(min)
                        + ", got " + dump_json(v));
    out = v.get<size_t>();
    return {};
  };
  for (auto& [key, v] : section.items()) {
    caf::error err;
    if (key == "listen") {
      if (!v.is_string())
        return bad(key, "expected HOST:PORT, got " + type_name(v));
      if (auto p = parse_listen(v.get<std::string>(), opts); !p.empty())
        return bad(key, p);
    } else if (key == "insecure") {
      if (!v.is_boolean())
        return bad(key, "expected true or false");
      opts.insecure = v.get<bool>();
    } else if (key == "drain_timeout") {
      err = duration(v, key, opts.drain_timeout);
    } else if (key == "request_timeout") {
      err = duration(v, key, opts.request_timeout);
    } else if (key == "read_timeout") {
      err = duration(v, key, opts.read_timeout);
    } else if (key == "write_timeout") {
      err = duration(v, key, opts.write_timeout);
    } else if (key == "max_body_bytes") {
      err = count(v, key, opts.max_body_bytes, 1);
    } else if (key == "max_import_bytes") {
      err = count(v, key, opts.max_import_bytes, 0);
    } else if (key == "threads") {
      err = count(v, key, opts.threads, 2);
    } else if (key == "max_queued_connections") {
      err = count(v, key, opts.max_queued_connections, 1);
    } else if (key == "sse") {
      if (!v.is_object())
        return bad(key, "expected a mapping with queue and keepalive");
      for (auto& [k, x] : v.items()) {
        if (k == "queue")
          err = count(x, "sse.queue", opts.sse_queue, 1);
        else if (k == "keepalive")
          err = duration(x, "sse.keepalive", opts.sse_keepalive);
        else
          return bad("sse." + k, "unknown key (known: queue, keepalive)");
        if (err)
          return err;
      }
    } else if (key == "rate_limit") {
      if (!v.is_object())
        return bad(key, "expected a mapping with per_second and burst");
      for (auto& [k, x] : v.items()) {
        if (k != "per_second" && k != "burst")
          return bad("rate_limit." + k,
                     "unknown key (known: per_second, burst)");
        if (!x.is_number() || x.get<double>() < 0)
          return bad("rate_limit." + k, "expected a non-negative number");
        (k == "per_second" ? opts.rate_limit : opts.rate_burst)
          = x.get<double>();
      }
    } else if (key == "cors_origins") {
      if (!v.is_array())
        return bad(key, "expected a list of origins");
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string())
          return bad(key + "[" + std::to_string(i) + "]",
                     "expected an origin such as https://app.example.com");
        opts.cors_origins.push_back(v[i].get<std::string>());
      }
    } else if (key == "tls") {
      if (!v.is_object())
        return bad(key, "expected a mapping with cert_file and key_file");
      for (auto& [k, x] : v.items()) {
        if (k != "cert_file" && k != "key_file")
          return bad("tls." + k, "unknown key (known: cert_file, key_file)");
        if (!x.is_string())
          return bad("tls." + k, "expected a file path");
        (k == "cert_file" ? opts.tls_cert_file : opts.tls_key_file)
          = x.get<std::string>();
      }
      if (opts.tls_cert_file.empty() != opts.tls_key_file.empty())
        return bad(key, "set both cert_file and key_file");
    } else if (key == "tokens" || key == "jwt") {
      // Read by the authenticator (auth.hpp).
    } else {
      return bad(key, "unknown key (known: listen, insecure, drain_timeout, "
                      "request_timeout, read_timeout, write_timeout, "
                      "max_body_bytes, max_import_bytes, threads, "
                      "max_queued_connections, sse, "
                      "rate_limit, cors_origins, tls, tokens, jwt)");
    }
    if (err)
      return err;
  }
  if (opts.rate_limit > 0 && opts.rate_burst <= 0)
    opts.rate_burst = 2 * opts.rate_limit;
  return opts;
}

} // namespace cadre::runtime
