#pragma once

// The base of the providers that speak a wire format over HTTP (openai,
// anthropic, ollama): one exchange for all of them (check the request,
// resolve model and key, POST, feed a streamed body to the format's reader,
// stamp model and duration), so each format says only what differs: its
// endpoint, headers, request body and how a reply is read. Private to tools/.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "llm/llm_support.hpp"

namespace cadre::tools::llm::detail {

/// The value of `key` when it is a string, else "".
std::string string_or_empty(const json& j, const char* key);

class http_provider : public provider {
public:
  explicit http_provider(profile p) : profile_(std::move(p)) {
  }

  const profile& settings() const final {
    return profile_;
  }

  expected<llm_response> complete(const llm_request& request,
                                  const call_context& ctx) final;

protected:
  /// What one call is about, for the reader of its reply.
  struct call {
    const llm_request& request;
    const std::string& model;
    const std::string& key;
    const call_context& ctx;
  };

  /// Reads one reply: pieces of a streamed body as they arrive, then the
  /// whole. `failure` set by feed() stops the transfer and is the call's
  /// error (send() returns it).
  class reply_reader {
  public:
    virtual ~reply_reader() = default;
    /// A piece of a streamed body; false stops the transfer.
    virtual bool feed(std::string_view piece) = 0;
    /// The reply: of the streamed pieces when `streamed`, else of `body`.
    /// Model and duration are stamped by the caller.
    virtual expected<llm_response> finish(bool streamed,
                                          const std::string& body) = 0;
    std::optional<caf::error> failure;
  };

  /// A reader of a Server-Sent Events body (openai, anthropic): each
  /// event's data goes to on_event().
  class sse_reader : public reply_reader {
  public:
    sse_reader()
      : sse_([this](const std::string&, const std::string& data) {
          return on_event(data);
        }) {
    }

    bool feed(std::string_view piece) override {
      return sse_.feed(piece);
    }

  protected:
    /// One event's data; false stops the transfer (with `failure` set).
    virtual bool on_event(const std::string& data) = 0;

    /// Reads what the end of the body completes.
    void end_of_stream() {
      sse_.finish();
    }

  private:
    net::sse_parser sse_;
  };

  /// The endpoint below base_url, e.g. "/chat/completions".
  virtual std::string path() const = 0;
  /// Whether the profile must name the key's variable.
  virtual bool key_required() const {
    return false;
  }
  virtual json request_body(const llm_request& req,
                            const std::string& model) const = 0;
  /// Authentication and version headers; `key` may be "" when not required.
  virtual void add_headers(net::http_headers& headers,
                           const std::string& key) const = 0;
  virtual std::unique_ptr<reply_reader> reader(const call& c) const = 0;

  profile profile_;

private:
  net::http_client client_;
};

} // namespace cadre::tools::llm::detail
