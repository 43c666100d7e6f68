#pragma once

// A real `cadre serve` process on a free loopback port, and the JSON calls
// tests make to it. Needs <gtest/gtest.h> included first.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cadre_process.hpp"

namespace cadre::test {

/// A `cadre serve` on a store, on a free loopback port; killed and reaped
/// with this object.
class cadre_server {
public:
  /// `extra`: global options before `serve` (`--config FILE`); `env`:
  /// NAME=VALUE for the process; `serve_args`: options of `serve`.
  explicit cadre_server(const std::string& db,
                        std::vector<std::string> extra = {},
                        std::vector<std::string> env = {},
                        std::vector<std::string> serve_args = {})
    : db_(db) {
    std::vector<std::string> args{"--db", db};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"serve", "--listen", "127.0.0.1:0"});
    args.insert(args.end(), serve_args.begin(), serve_args.end());
    proc_ = std::make_unique<cadre_process>(args, db + ".serve.err", env);
    std::string line;
    if (!proc_->read_line(line,
                          clock_type::now() + std::chrono::seconds{60})) {
      ADD_FAILURE() << "cadre serve did not start: "
                    << proc_->stderr_text();
      return;
    }
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("url")) {
      ADD_FAILURE() << "unexpected first line: " << line;
      return;
    }
    url_ = j["url"].get<std::string>();
    auto colon = url_.rfind(':');
    port_ = std::stoi(url_.substr(colon + 1));
  }

  bool ok() const {
    return port_ > 0;
  }
  const std::string& url() const {
    return url_;
  }
  int port() const {
    return port_;
  }
  cadre_process& proc() {
    return *proc_;
  }

  httplib::Client client() const {
    httplib::Client c{"127.0.0.1", port_};
    c.set_read_timeout(60, 0);
    c.set_connection_timeout(10, 0);
    return c;
  }

private:
  std::string db_;
  std::unique_ptr<cadre_process> proc_;
  std::string url_;
  int port_ = 0;
};

/// A TCP connection to a server on loopback `port` (-1 when refused),
/// reads bounded at 30 s; `rcvbuf` > 0 shrinks the receive buffer first (a
/// client that reads slowly).
inline int connect_to(int port, int rcvbuf = 0) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (rcvbuf > 0)
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// The body of a response as JSON (discarded when it is not), or
/// {"transport_error": ...} when no response came.
inline nlohmann::json body_of(const httplib::Result& r) {
  if (!r)
    return nlohmann::json{{"transport_error", httplib::to_string(r.error())}};
  return nlohmann::json::parse(r->body, nullptr, false);
}

inline nlohmann::json post(const cadre_server& s, const std::string& path,
                           const nlohmann::json& body, int* status = nullptr) {
  auto c = s.client();
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  if (status)
    *status = r ? r->status : -1;
  return body_of(r);
}

inline nlohmann::json get(const cadre_server& s, const std::string& path,
                          int* status = nullptr) {
  auto c = s.client();
  auto r = c.Get(path.c_str());
  if (status)
    *status = r ? r->status : -1;
  return body_of(r);
}

} // namespace cadre::test
