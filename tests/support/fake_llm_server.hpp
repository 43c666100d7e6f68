#pragma once

// A scripted LLM endpoint on loopback for provider tests: it records each
// request (path, headers, body) and answers with the next scripted reply,
// whole or streamed in pieces, so a test can assert on what a client sent
// and feed it exact wire formats, errors and stalls.

#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "loopback_server.hpp"

namespace cadre::test {

/// One request the server received.
struct llm_exchange {
  std::string path;
  httplib::Headers headers;
  std::string body;
  /// The body parsed (null when it is not JSON).
  nlohmann::json json;

  /// The value of header `name` (case-insensitive), "" when absent.
  std::string header(const std::string& name) const {
    auto i = headers.find(name);
    return i == headers.end() ? std::string{} : i->second;
  }
};

/// One scripted answer.
struct llm_reply {
  int status = 200;
  std::string content_type = "application/json";
  /// The body; several pieces are sent as separate HTTP chunks, in order.
  std::vector<std::string> pieces;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Hold the answer until the server stops: slower than any client
  /// timeout.
  bool stall = false;
  /// Send the pieces, then hold the rest of the stream until the server
  /// stops: a stream that stops flowing.
  bool stall_after = false;
};

/// A whole JSON body with `status`.
inline llm_reply json_reply(const nlohmann::json& body, int status = 200) {
  llm_reply r;
  r.status = status;
  r.pieces.push_back(body.dump());
  return r;
}

/// A streamed body of `pieces` with `content_type`.
inline llm_reply stream_reply(std::vector<std::string> pieces,
                              std::string content_type) {
  llm_reply r;
  r.content_type = std::move(content_type);
  r.pieces = std::move(pieces);
  return r;
}

/// Splits `text` into pieces of `size` bytes, cutting lines and JSON
/// anywhere, as a network may.
inline std::vector<std::string> cut(const std::string& text, size_t size) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size(); i += size)
    out.push_back(text.substr(i, size));
  return out;
}

class fake_llm_server {
public:
  /// Serves POST `path` (e.g. "/v1/chat/completions").
  explicit fake_llm_server(const std::string& path) {
    srv_.server().Post(path, [this](const httplib::Request& req,
                                    httplib::Response& res) {
      llm_reply reply;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        llm_exchange ex{req.path, req.headers, req.body,
                        nlohmann::json::parse(req.body, nullptr, false)};
        if (ex.json.is_discarded())
          ex.json = nullptr;
        exchanges_.push_back(std::move(ex));
        if (replies_.empty()) {
          reply = json_reply({{"error", "no scripted reply"}}, 500);
        } else {
          reply = replies_.front();
          // The last reply repeats, for "always fails" scripts.
          if (replies_.size() > 1)
            replies_.pop_front();
        }
      }
      if (reply.stall) {
        srv_.wait_for_stop(std::chrono::seconds{30});
        res.status = 503;
        return;
      }
      res.status = reply.status;
      for (const auto& [name, value] : reply.headers)
        res.set_header(name, value);
      if (reply.pieces.size() == 1 && !reply.stall_after
          && reply.content_type == "application/json") {
        res.set_content(reply.pieces.front(), reply.content_type);
        return;
      }
      res.set_chunked_content_provider(
        reply.content_type,
        [this, pieces = reply.pieces,
         stall_after = reply.stall_after](size_t, httplib::DataSink& sink) {
          for (const auto& p : pieces)
            if (!sink.write(p.data(), p.size()))
              return false;
          if (stall_after)
            srv_.wait_for_stop(std::chrono::seconds{30});
          sink.done();
          return true;
        });
    });
    srv_.start();
  }

  ~fake_llm_server() {
    // Handlers use the members below: stop them first.
    srv_.stop();
  }

  fake_llm_server(const fake_llm_server&) = delete;
  fake_llm_server& operator=(const fake_llm_server&) = delete;

  /// Adds a reply to the script (answered in order; the last repeats).
  void push(llm_reply reply) {
    std::lock_guard<std::mutex> guard{mtx_};
    replies_.push_back(std::move(reply));
  }

  /// Requests received so far.
  std::vector<llm_exchange> exchanges() {
    std::lock_guard<std::mutex> guard{mtx_};
    return exchanges_;
  }

  /// "http://127.0.0.1:<port><path>".
  std::string url(const std::string& path = "") const {
    return srv_.url(path);
  }

private:
  loopback_server srv_;
  std::mutex mtx_;
  std::deque<llm_reply> replies_;
  std::vector<llm_exchange> exchanges_;
};

} // namespace cadre::test
