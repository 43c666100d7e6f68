#pragma once

// LLM providers behind one interface, configured as named profiles. A
// provider is a plain class (no actor code): the agent actor calls it from a
// blocking worker (inline when it declares it never blocks) and records each
// request and reply as an event.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cadre/messages/agent.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::tools::llm {

/// One named provider profile (config `llm.profiles.<name>`).
struct profile {
  /// The profile's name, e.g. "default". Default: "default"
  std::string name = "default";
  /// "openai" (any OpenAI-compatible chat completions server), "ollama"
  /// (native /api/chat), "anthropic" (Messages API) or "scripted".
  /// Default: "scripted"
  std::string kind = "scripted";
  /// e.g. "https://api.openai.com/v1", "http://127.0.0.1:11434",
  /// "https://api.anthropic.com". Default: the kind's public endpoint
  std::string base_url;
  /// Default model of requests that name none.
  std::string model;
  /// Name of the environment variable that holds the API key. The key
  /// itself never enters config, events or logs. Default: none
  std::string api_key_env;
  /// Default: 10 s
  std::chrono::milliseconds connect_timeout = std::chrono::seconds{10};
  /// One attempt, streaming included. Default: 120 s
  std::chrono::milliseconds timeout = std::chrono::seconds{120};
  /// Attempts on 429, 5xx and connection errors (Retry-After honoured).
  /// Default: 4
  uint32_t max_attempts = 4;
  /// US dollars per million tokens, for llm_usage::cost_usd. Default: 0
  double price_input_per_mtok = 0;
  double price_output_per_mtok = 0;
  /// What only one kind reads (scripted: `script` path or inline `turns`;
  /// anthropic: `version`, `max_tokens`; ...). Default: {}
  json settings = json::object();
};

/// Per-call context.
struct call_context {
  /// Wall-clock deadline, microseconds since the epoch; 0: none.
  int64_t deadline_us = 0;
  /// Set when the call is abandoned; providers stop the transfer.
  std::shared_ptr<std::atomic<bool>> cancel_flag
    = std::make_shared<std::atomic<bool>>(false);
  /// Streamed text pieces as they arrive (only when request.stream).
  std::function<void(std::string_view)> on_text;
  /// Told of each retry of an HTTP provider (net::http_request::on_retry).
  std::function<void(uint32_t, const std::string&, std::chrono::milliseconds)>
    on_retry;
};

/// A client of one profile. Instances are not shared between threads.
class provider {
public:
  virtual ~provider();

  virtual const profile& settings() const = 0;

  /// Whether complete() can wait: on the network, a timer, a file. Such a
  /// provider runs on a thread of its own; one that never waits may be
  /// called on an actor's thread (the agent's), saving two thread hand-offs
  /// a call. Default: true
  virtual bool may_block() const;

  /// One model call (with retries per the profile). Errors name the
  /// profile and what went wrong, never the key: errc::unavailable
  /// (connection, 5xx after retries), errc::timeout, errc::invalid_config
  /// (bad key, unknown model), errc::invalid_input (context overflow, a bad
  /// request), errc::tool_failed (a malformed reply, quoting it), and
  /// errc::cancelled.
  [[nodiscard]] virtual expected<llm_response>
  complete(const llm_request& request, const call_context& ctx) = 0;
};

/// Reads `llm.profiles.<name>` (the JSON form of the YAML section). Errors
/// name the key, e.g. "llm.profiles.local.timeout: must be a duration".
[[nodiscard]] expected<profile> parse_profile(const std::string& name,
                                              const json& section);

/// Makes the provider of `p.kind` (tools/src/llm/providers.def).
/// Errors: errc::invalid_config for an unknown kind or bad settings.
[[nodiscard]] expected<std::unique_ptr<provider>>
make_provider(const profile& p);

/// usage.cost_usd from the profile's prices.
double cost_of(const profile& p, uint64_t input_tokens,
               uint64_t output_tokens);

} // namespace cadre::tools::llm
