#include "cadre/runtime/cluster_options.hpp"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cadre/messages/duration.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::runtime {

namespace {

caf::error bad(const std::string& key, const std::string& problem) {
  return make_error(errc::invalid_config, "cluster." + key + ": " + problem);
}

// "" or a problem with `text` as HOST:PORT (port 1..65535).
std::string split_host_port(const std::string& text, std::string& host,
                            uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return "expected HOST:PORT, got '" + text + "'";
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port_text = text.substr(colon + 1);
  char* end = nullptr;
  auto p = std::strtol(port_text.c_str(), &end, 10);
  if (*end != '\0' || p < 1 || p > 65535)
    return "expected a port from 1 to 65535, got '" + port_text + "'";
  port = static_cast<uint16_t>(p);
  return {};
}

// "" or what is wrong with `name` as a node name.
std::string check_node_name(const std::string& name) {
  if (name.empty() || name.size() > 64)
    return "expected 1 to 64 characters, got " + std::to_string(name.size());
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      return "expected letters, digits, '_' and '-' only, got '" + name + "'";
  return {};
}

caf::error add_seeds(cluster_options& opts, const std::string& key,
                     const std::string& list) {
  size_t start = 0;
  while (start <= list.size()) {
    auto comma = list.find(',', start);
    auto item = list.substr(start, comma == std::string::npos
                                      ? std::string::npos
                                      : comma - start);
    if (!item.empty()) {
      std::string host;
      uint16_t port = 0;
      if (auto p = split_host_port(item, host, port); !p.empty())
        return bad(key, p);
      opts.join.push_back(item);
    }
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return {};
}

caf::error set_listen(cluster_options& opts, const std::string& key,
                      const std::string& text) {
  if (auto p = split_host_port(text, opts.listen_host, opts.listen_port);
      !p.empty())
    return bad(key, p);
  opts.enabled = true;
  return {};
}

} // namespace

std::string execution_owner(const std::string& id) {
  auto dot = id.rfind('.');
  return dot == std::string::npos ? std::string{} : id.substr(dot + 1);
}

std::string cluster_options::address() const {
  if (!advertise.empty())
    return advertise;
  auto h = listen_host.find(':') != std::string::npos ? "[" + listen_host + "]"
                                                      : listen_host;
  return h + ":" + std::to_string(listen_port);
}

bool cluster_options::loopback() const {
  return listen_host == "127.0.0.1" || listen_host == "::1"
         || listen_host == "localhost" || listen_host.rfind("127.", 0) == 0;
}

expected<cluster_options> parse_cluster_options(const json& section) {
  cluster_options opts;
  if (section.is_null())
    return opts;
  if (!section.is_object())
    return make_error(errc::invalid_config, "cluster: expected a mapping");
  auto duration = [&](const json& v, const std::string& key,
                      std::chrono::milliseconds& out) -> caf::error {
    int64_t ms = 0;
    if (auto problem = parse_duration(v, ms); !problem.empty())
      return bad(key, problem);
    if (ms <= 0)
      return bad(key, "expected a positive duration");
    out = std::chrono::milliseconds{ms};
    return {};
  };
  auto text = [&](const json& v, const std::string& key,
                  std::string& out) -> caf::error {
    if (!v.is_string() || v.get<std::string>().empty())
      return bad(key, "expected a non-empty string, got " + dump_json(v));
    out = v.get<std::string>();
    return {};
  };
  for (auto& [key, v] : section.items()) {
    caf::error err;
    if (key == "name") {
      err = text(v, key, opts.name);
    } else if (key == "node_name") {
      err = text(v, key, opts.node_name);
    } else if (key == "listen") {
      std::string s;
      if (!(err = text(v, key, s)))
        err = set_listen(opts, key, s);
    } else if (key == "advertise") {
      err = text(v, key, opts.advertise);
    } else if (key == "join") {
      if (v.is_string()) {
        err = add_seeds(opts, key, v.get<std::string>());
      } else if (v.is_array()) {
        for (size_t i = 0; i < v.size() && !err; ++i) {
          auto at = key + "[" + std::to_string(i) + "]";
          if (!v[i].is_string())
            err = bad(at, "expected HOST:PORT, got " + dump_json(v[i]));
          else
            err = add_seeds(opts, at, v[i].get<std::string>());
        }
      } else {
        err = bad(key, "expected a list of HOST:PORT");
      }
    } else if (key == "heartbeat_interval") {
      err = duration(v, key, opts.heartbeat_interval);
    } else if (key == "suspect_after") {
      err = duration(v, key, opts.suspect_after);
    } else if (key == "down_after") {
      err = duration(v, key, opts.down_after);
    } else if (key == "tls") {
      if (!v.is_object()) {
        err = bad(key, "expected a mapping with ca, cert and key");
      } else {
        for (auto& [k, f] : v.items()) {
          auto at = "tls." + k;
          if (k == "ca")
            err = text(f, at, opts.tls_ca);
          else if (k == "cert")
            err = text(f, at, opts.tls_cert);
          else if (k == "key")
            err = text(f, at, opts.tls_key);
          else
            err = bad(at, "unknown key (known: ca, cert, key)");
          if (err)
            break;
        }
      }
    } else if (key == "insecure") {
      if (!v.is_boolean())
        err = bad(key, "expected true or false");
      else
        opts.insecure = v.get<bool>();
    } else {
      err = bad(key, "unknown key (known: advertise, down_after, "
                     "heartbeat_interval, insecure, join, listen, name, "
                     "node_name, suspect_after, tls)");
    }
    if (err)
      return err;
  }
  auto given = !opts.tls_ca.empty() + !opts.tls_cert.empty()
               + !opts.tls_key.empty();
  if (given != 0 && given != 3)
    return bad("tls", "set all of ca, cert and key: without a CA and a "
                      "certificate of its own a node cannot check its "
                      "peers, and CAF would fall back to anonymous TLS");
  for (auto [k, path] : {std::pair{"tls.ca", &opts.tls_ca},
                         std::pair{"tls.cert", &opts.tls_cert},
                         std::pair{"tls.key", &opts.tls_key}})
    if (!path->empty()) {
      std::FILE* f = std::fopen(path->c_str(), "rb");
      if (f == nullptr)
        return bad(k, "cannot read " + *path + ": " + std::strerror(errno));
      std::fclose(f);
    }
  if (opts.suspect_after >= opts.down_after)
    return bad("down_after", "must be longer than suspect_after");
  if (opts.heartbeat_interval * 2 > opts.suspect_after)
    return bad("suspect_after",
               "must be at least two heartbeat intervals, or a member is "
               "suspected between two heartbeats");
  return opts;
}

caf::error apply_cluster_flags(cluster_options& opts,
                               const std::string& listen,
                               const std::string& join,
                               const std::string& node_name) {
  if (!listen.empty())
    if (auto err = set_listen(opts, "listen (--cluster-listen)", listen))
      return err;
  if (!join.empty()) {
    opts.join.clear();
    if (auto err = add_seeds(opts, "join (--join)", join))
      return err;
  }
  if (!node_name.empty())
    opts.node_name = node_name;
  if (opts.enabled && opts.node_name.empty()) {
    char host[256] = {0};
    if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
      std::snprintf(host, sizeof(host), "node");
    std::string name;
    for (char* c = host; *c != '\0' && name.size() < 48; ++c)
      name += std::isalnum(static_cast<unsigned char>(*c)) || *c == '-'
                ? *c
                : '-';
    opts.node_name = name + "-" + std::to_string(opts.listen_port);
  }
  if (opts.enabled)
    if (auto p = check_node_name(opts.node_name); !p.empty())
      return bad("node_name (--node-name)", p);
  if (!opts.enabled && !opts.join.empty())
    return bad("join", "joining needs a cluster listener (cluster.listen or "
                       "--cluster-listen)");
  return {};
}

} // namespace cadre::runtime
