#pragma once

// What the HTTP providers (openai, ollama, anthropic) share: the request
// skeleton built from a profile and a call context, the API key read from
// the environment, error messages that name the profile and never the key,
// NDJSON framing (SSE is cadre/tools/net/sse_parser.hpp), and the parsing of
// tool-call arguments. Private to tools/.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/agent.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/tools/llm/provider.hpp"
#include "cadre/tools/net/http_client.hpp"
#include "cadre/tools/net/sse_parser.hpp"
#include "tool_support.hpp"

namespace cadre::tools::llm::detail {

/// The public endpoint of a provider kind ("" for kinds without one).
std::string default_base_url(std::string_view kind);

/// `base` without trailing slashes, followed by `path` ("/chat/completions").
std::string join_url(std::string_view base, std::string_view path);

/// Microseconds since the epoch.
int64_t wall_now_us();

/// "llm profile '<name>': " + what, with code `code`.
caf::error profile_error(const profile& p, errc code, std::string what);

/// Fails with "llm.profiles.<name>.<key>: unknown setting (expected one of:
/// ...)" for a key of p.settings outside `known`.
[[nodiscard]] expected<void>
check_settings(const profile& p, std::initializer_list<std::string_view> known);

/// "llm.profiles.<name>.<key>: <what>" as errc::invalid_config.
caf::error setting_error(const profile& p, std::string_view key,
                         std::string_view what);

/// The API key from the variable named by p.api_key_env: "" when the
/// profile names none and `required` is false; an errc::invalid_config
/// error naming the variable (never a value) when it is unset or empty.
[[nodiscard]] expected<std::string> api_key(const profile& p, bool required);

/// The model of a call: the request's, else the profile's; an error when
/// both are empty.
[[nodiscard]] expected<std::string> model_of(const profile& p,
                                             const llm_request& req);

/// Checks roles and the fields each role needs (JSON pointers into the
/// request: "/messages/2/tool_call_id"); errc::invalid_input.
[[nodiscard]] expected<void> check_request(const profile& p,
                                           const llm_request& req);

/// A POST of `body` to `url` with the profile's timeouts, the context's
/// deadline and cancel flag, and the SSRF policy of a configured endpoint
/// (loopback and private addresses allowed, link-local refused).
net::http_request make_post(const profile& p, const call_context& ctx,
                            std::string url, const json& body);

/// Retries per the profile: max_attempts, backoff from 500 ms up to 30 s.
net::retry_policy retry_of(const profile& p);

/// Replaces every occurrence of `secret` in `text` with "[redacted]".
using tools::detail::scrub;

/// The first characters of `text` in quotes for an error message, with
/// "..." when cut, the secret scrubbed before the cut (a key crossing it
/// would otherwise leave its first characters).
std::string quote(std::string_view text, std::string_view secret = {},
                  size_t max = 200);

/// The human part of an error body: `error` when it is a string (Ollama),
/// `error.message` (OpenAI, Anthropic), else the start of the body; the
/// secret scrubbed either way, before any cut.
std::string provider_message(std::string_view body, std::string_view secret);

/// The machine part of an error body: `error.code`, else `error.type`
/// (OpenAI "context_length_exceeded", Anthropic "not_found_error"), or "".
std::string provider_code(std::string_view body);

/// The error of a final non-2xx response: 401/403 errc::invalid_config
/// naming the profile and the key's variable (no provider text, which may
/// echo part of the key); 404 and "model not found" errc::invalid_config;
/// context overflow and other 4xx errc::invalid_input; 429 and 5xx (after
/// retries) errc::unavailable; else errc::tool_failed.
caf::error status_error(const profile& p, const std::string& model,
                        const net::http_response& resp,
                        std::string_view secret);

/// An error that arrived inside a 200 stream (an Ollama `error` line, an
/// OpenAI `error` chunk, an Anthropic `error` event), by its type if any.
caf::error stream_error(const profile& p, const std::string& model,
                        std::string_view type, std::string_view message,
                        std::string_view secret);

/// Prefixes an http_client error (timeout, connection, cancel) with the
/// profile, keeping its code.
caf::error transport_error(const profile& p, const caf::error& err,
                           std::string_view secret);

/// Performs `req` with the profile's retries. A final status outside 2xx
/// becomes status_error, a transport failure transport_error; when
/// `stream_failure` holds an error afterwards (set by a body sink that
/// stopped the transfer), that error is returned instead.
[[nodiscard]] expected<net::http_response>
send(net::http_client& client, const profile& p, const net::http_request& req,
     const std::string& model, std::string_view secret,
     const std::optional<caf::error>& stream_failure);

/// Sets `call.arguments` from the model's argument text (OpenAI, Anthropic
/// streaming, an Ollama string): "" is {}. Text that is not a JSON object
/// is not an error of the reply: the call gets {} and an `arguments_error`
/// quoting the text, which the agent hands back to the model to correct.
/// @pre `call.name` is set.
void set_arguments(llm_tool_call& call, std::string_view text);

/// The same for arguments given as JSON (Ollama, Anthropic): null is {},
/// anything else but an object is an `arguments_error`.
void set_arguments(llm_tool_call& call, const json& args);

/// A reply body that is not the JSON expected: errc::tool_failed quoting
/// it.
caf::error malformed(const profile& p, std::string_view what,
                     std::string_view text, std::string_view secret = {});

/// Parses `text` as JSON; nullopt when it is not.
std::optional<json> parse_json(std::string_view text);

/// Newline-delimited lines (NDJSON), fed in arbitrary pieces; blank lines
/// are skipped and a last line without its newline is passed by finish().
class line_splitter {
public:
  using handler = std::function<bool(std::string_view line)>;

  explicit line_splitter(handler h) : on_line_(std::move(h)) {
  }

  bool feed(std::string_view piece);
  bool finish();

private:
  handler on_line_;
  std::string buf_;
  bool stopped_ = false;
};

/// The usage of a reply with its cost per the profile's prices.
/// A tool as every provider accepts it: the name, a description, and
/// parameters that are a JSON Schema of type object at the top with no
/// top-level combinator (OpenAI refuses "Invalid schema for function",
/// Anthropic "input_schema.type: Field required"). A top-level oneOf/anyOf
/// becomes one object with every branch's properties (required: those all
/// branches require), allOf the merge of its branches; what that loses is
/// said in the description.
struct offered_tool {
  std::string name;
  std::string description;
  json parameters;
};

offered_tool offer(const llm_tool_spec& t);

llm_usage usage_of(const profile& p, uint64_t input, uint64_t output);

} // namespace cadre::tools::llm::detail
