#pragma once

// `cadre serve` for integration tests: a server process on a store and a
// free loopback port, and JSON requests to it. Needs <gtest/gtest.h>
// included first.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>

#include "cadre/messages/json_value.hpp"
#include "cadre_process.hpp"

namespace cadre::test {

/// A `cadre serve` on a store, on a free loopback port.
class server {
public:
  explicit server(const std::string& db, std::vector<std::string> extra = {},
                  std::vector<std::string> env = {})
    : db_(db) {
    std::vector<std::string> args{"--db", db};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"serve", "--listen", "127.0.0.1:0"});
    proc_ = std::make_unique<cadre_process>(args, db + ".serve.err", env);
    std::string line;
    auto deadline = clock_type::now() + std::chrono::seconds{60};
    if (!proc_->read_line(line, deadline)) {
      ADD_FAILURE() << "cadre serve did not start: "
                    << proc_->stderr_text();
      return;
    }
    auto j = json::parse(line, nullptr, false);
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

inline json body_of(const httplib::Result& r) {
  if (!r)
    return json{{"transport_error", httplib::to_string(r.error())}};
  return json::parse(r->body, nullptr, false);
}

inline json post(const server& s, const std::string& path,
                 const json& body, int* status = nullptr) {
  auto c = s.client();
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  if (status)
    *status = r ? r->status : -1;
  return body_of(r);
}

inline json get(const server& s, const std::string& path,
                int* status = nullptr) {
  auto c = s.client();
  auto r = c.Get(path.c_str());
  if (status)
    *status = r ? r->status : -1;
  return body_of(r);
}

} // namespace cadre::test
