// notify: POSTs a JSON message to a webhook (Slack-compatible {"text",
// "blocks"} by default, or a custom JSON body), with retries and the SSRF
// policy of the network tools. A non-2xx answer is an error: a notification
// that did not arrive must not pass silently.

#include <memory>
#include <string>
#include <string_view>

#include "cadre/tools/net/http_client.hpp"
#include "cadre/tools/tool.hpp"
#include "net/net_support.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools {

namespace {

constexpr std::string_view tool_name = "notify";

/// Settings of the notify tool (`tools.notify`).
struct notify_options {
  /// Common network settings (net_support.hpp). Redirects are not followed
  /// by default: a redirected POST would arrive as a GET. Default:
  /// net_options with max_redirects 0
  net::net_options net;
  /// Webhook used when the input names none; it often holds a secret in
  /// its path, so messages show only its origin. Default: none
  std::string url;
  /// Extra request headers (e.g. Authorization for a generic webhook).
  /// Default: none
  net::http_headers headers;
};

class notify_tool final : public tool {
public:
  explicit notify_tool(notify_options opts) : opts_(std::move(opts)) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return std::string{tool_name};
  }

  tool_description describe() const override {
    // Either a body, or text (with blocks); without a configured webhook,
    // a url too.
    json rules = json::array(
      {{{"if", {{"required", {"body"}}}},
        {"then",
         {{"not", {{"anyOf", json::array({{{"required", {"text"}}},
                                           {{"required", {"blocks"}}}})}}}}},
        {"else", {{"required", {"text"}}}}}});
    if (opts_.url.empty())
      rules.push_back({{"required", {"url"}}});
    return {
      std::string{tool_name},
      "Sends a notification to a chat webhook (Slack, Mattermost, Rocket.Chat "
      "and other Slack-compatible hooks): `text` is the message, `blocks` "
      "optional Slack Block Kit blocks. Give `body` instead to POST any JSON "
      "document (e.g. for Discord or Microsoft Teams). The webhook URL comes "
      "from the node settings unless `url` is given. Fails when the webhook "
      "does not accept the message.",
      json{
        {"type", "object"},
        {"properties",
         {
           {"text",
            {{"type", "string"},
             {"minLength", 1},
             {"description", "Message text (Slack mrkdwn); required "
                             "unless body is given."}}},
           {"blocks",
            {{"type", "array"},
             {"items", {{"type", "object"}}},
             {"description", "Slack Block Kit blocks; text stays the "
                             "fallback for notifications."}}},
           {"body",
            {{"type", "object"},
             {"description", "A custom JSON body, sent as is instead of "
                             "text and blocks."}}},
           {"url",
            {{"type", "string"},
             {"minLength", 1},
             {"description", "Webhook URL; default: the configured one "
                             "(tools.notify.url; required when none is "
                             "configured)."}}},
         }},
        {"additionalProperties", false},
        {"allOf", std::move(rules)},
      },
      json{
        {"type", "object"},
        {"properties",
         {
           {"delivered", {{"type", "boolean"}}},
           {"status", {{"type", "integer"}}},
           {"attempts", {{"type", "integer"}, {"minimum", 1}}},
           {"response",
            {{"description", "The webhook's answer: parsed JSON or text."}}},
         }},
        {"required", {"delivered", "status", "attempts"}},
      },
    };
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    const json& in = *input;
    // The schema says it all, the configured webhook included.
    if (auto ok = detail::check_input(tool_name, input_schema_, in); !ok)
      return std::move(ok.error());
    json payload;
    if (auto body = in.find("body"); body != in.end()) {
      payload = *body;
    } else {
      payload = json{{"text", in.at("text")}};
      if (auto blocks = in.find("blocks"); blocks != in.end())
        payload["blocks"] = *blocks;
    }
    auto req = net::make_request(opts_.net, ctx);
    req.method = "POST";
    req.url = in.value("url", opts_.url);
    // Webhook URLs carry their secret in the path: show the origin only.
    req.display_url = net::url_origin(req.url) + "/...";
    req.headers = opts_.headers;
    req.headers.set("Content-Type", "application/json");
    if (!ctx.idempotency_key.empty())
      req.headers.set("Idempotency-Key", ctx.idempotency_key);
    req.body = dump_json(payload);
    auto resp = net::perform_with_retry(client_, req, opts_.net.retry);
    if (!resp)
      return net::tool_error(tool_name, resp.error());
    auto status = resp->status;
    if (status < 200 || status > 299) {
      std::string msg = "tool notify: POST " + req.display_url
                        + ": the webhook answered " + std::to_string(status);
      if (resp->attempts > 1)
        msg += " after " + std::to_string(resp->attempts) + " attempts";
      if (!resp->body.empty())
        msg += ": " + net::body_excerpt(ctx.redact(resp->body));
      return make_error(status >= 500 ? errc::unavailable : errc::tool_failed,
                        std::move(msg));
    }
    json out{{"delivered", true},
             {"status", status},
             {"attempts", resp->attempts}};
    json answer;
    net::put_body(answer, *resp);
    out["response"] = answer["body"];
    return json_value{std::move(out)};
  }

private:
  notify_options opts_;
  net::http_client client_;
  json_schema input_schema_;
};

} // namespace

namespace {

/// Redirects are not followed by default: a redirected POST would arrive
/// as a GET.
net::net_options notify_net_defaults() {
  net::net_options defaults;
  defaults.max_redirects = 0;
  return defaults;
}

} // namespace

json notify_settings_schema() {
  auto props = net::net_settings_properties(notify_net_defaults());
  props["url"] = detail::string_setting("Webhook used when the input names "
                                        "none.",
                                        false);
  props["headers"]
    = {{"type", "object"},
       {"additionalProperties",
        {{"type", "string"},
         {"pattern", "^[^\\r\\n]*$"},
         {"description", "a string without line breaks"}}},
       {"description", "Extra request headers, by name."}};
  return detail::settings_schema(std::move(props));
}

expected<std::unique_ptr<tool>> make_notify_tool(const json_value& settings) {
  const json& obj = *settings;
  notify_options opts;
  opts.net = net::parse_net_options(tool_name, obj, notify_net_defaults());
  opts.url = detail::setting(obj, "url", opts.url);
  if (auto h = obj.find("headers"); h != obj.end() && !h->is_null())
    for (const auto& [name, value] : h->items())
      opts.headers.add(name, value.get<std::string>());
  auto t = std::make_unique<notify_tool>(std::move(opts));
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
