#pragma once

// An HTTP server on 127.0.0.1 and a free port, run by cpp-httplib in a
// background thread, for tests of HTTP clients and tools. Register handlers
// on server() before start(); the destructor stops and joins.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <httplib.h>

namespace cadre::test {

class loopback_server {
public:
  loopback_server() {
    // Idle kept-alive connections must not hold up the destructor long.
    server_.set_keep_alive_timeout(1);
    server_.set_pre_routing_handler(
      [this](const httplib::Request&, httplib::Response&) {
        ++hits_;
        return httplib::Server::HandlerResponse::Unhandled;
      });
  }

  ~loopback_server() {
    stop();
  }

  loopback_server(const loopback_server&) = delete;
  loopback_server& operator=(const loopback_server&) = delete;

  /// The server, to add handlers (Get, Post, ...) before start().
  httplib::Server& server() {
    return server_;
  }

  /// Binds 127.0.0.1 on a free port and serves until stop(); returns once
  /// the server accepts connections.
  void start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0)
      throw std::runtime_error("loopback_server: cannot bind 127.0.0.1");
    thread_ = std::thread{[this] { server_.listen_after_bind(); }};
    // The socket listens already (bind_to_any_port); wait for the accept
    // loop so stop() cannot race with its start.
    while (!server_.is_running())
      std::this_thread::yield();
  }

  /// Stops serving: wakes handlers blocked in wait_for_stop first.
  void stop() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
  }

  int port() const {
    return port_;
  }

  /// "http://127.0.0.1:<port><path>".
  std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string{path};
  }

  /// For slow handlers: blocks until stop() or `max` passes, whichever is
  /// first; true when stopping.
  bool wait_for_stop(std::chrono::milliseconds max) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, max, [this] { return stopping_; });
  }

  /// Requests received so far (counted before routing).
  int hits() const {
    return hits_.load();
  }

private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<int> hits_{0};
};

} // namespace cadre::test
