#include "cli/client.hpp"
#include "cadre/messages/json_text.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <thread>

namespace cadre::runtime::cli {

namespace net = tools::net;
using std::chrono::milliseconds;

namespace {

// Timeouts of one call, of a tool invocation beyond its own timeout, and of
// one stream connection (a follow reconnects after it, so it only bounds a
// connection's life); idle: keep-alives come every 15 s.
constexpr milliseconds call_timeout{60'000};
constexpr milliseconds invoke_margin{30'000};
constexpr milliseconds invoke_default{600'000};
constexpr milliseconds stream_timeout{24 * 3600 * 1000};
constexpr milliseconds stream_idle{90'000};
constexpr milliseconds max_backoff{8'000};

int64_t wall_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string quote(std::string_view text, size_t max = 200) {
  std::string out{text.substr(0, max)};
  if (text.size() > max)
    out += "...";
  return "'" + out + "'";
}

// A field as text, whatever the server sent: strings as they are, null or
// missing as "", anything else as JSON.
std::string text_of(const json& j, const char* key) {
  auto i = j.find(key);
  if (i == j.end() || i->is_null())
    return {};
  if (i->is_string())
    return i->get<std::string>();
  return dump_json(*i);
}

template <class T>
T number_of(const json& j, const char* key) {
  auto i = j.find(key);
  if (i == j.end() || !i->is_number())
    return T{0};
  return i->get<T>();
}

execution_info info_of(const json& j) {
  if (!j.is_object() || !j.contains("id"))
    throw std::invalid_argument("not an execution");
  execution_info x;
  x.id = text_of(j, "id");
  x.workflow = text_of(j, "workflow");
  x.version = text_of(j, "version");
  x.status = text_of(j, "status");
  x.created_us = number_of<int64_t>(j, "created_us");
  x.updated_us = number_of<int64_t>(j, "updated_us");
  x.last_seq = number_of<uint64_t>(j, "last_seq");
  x.output = json_value{j.value("output", json{})};
  // An error may come as an object with a message.
  if (auto e = j.find("error"); e != j.end() && e->is_object())
    x.error = e->contains("message") ? text_of(*e, "message") : dump_json(*e);
  else
    x.error = text_of(j, "error");
  return x;
}

event event_of(const json& j) {
  if (!j.is_object() || !j.contains("seq") || !j.contains("type"))
    throw std::invalid_argument("not an event");
  event ev;
  ev.execution_id = text_of(j, "execution_id");
  ev.seq = j.at("seq").get<uint64_t>();
  ev.time_us = number_of<int64_t>(j, "time_us");
  ev.type = j.at("type").get<std::string>();
  ev.payload = json_value{j.value("payload", json{})};
  return ev;
}

std::string lower(std::string text) {
  for (auto& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

errc code_of_status(long status) {
  switch (status) {
    case 400:
    case 413:
    case 415:
    case 422:
      return errc::invalid_input;
    case 401:
    case 403:
      return errc::invalid_config;
    case 404:
      return errc::not_found;
    case 409:
      return errc::conflict;
    case 429:
    case 502:
    case 503:
    case 504:
      return errc::unavailable;
    default:
      return errc::internal;
  }
}

bool retryable(const caf::error& err) {
  auto code = cadre::code_of(err);
  return code == errc::unavailable || code == errc::timeout;
}

} // namespace

std::string percent_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                      || (c >= '0' && c <= '9') || c == '-' || c == '.'
                      || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
  }
  return out;
}

caf::error problem_error(long status, std::string_view body) {
  auto code = code_of_status(status);
  std::string text = "server: " + std::to_string(status);
  auto doc = try_parse_json(body);
  if (doc.is_object()
      && (doc.contains("type") || doc.contains("title")
          || doc.contains("detail"))) {
    auto type = text_of(doc, "type");
    if (type == "/problems/invalid_workflow")
      code = errc::invalid_workflow;
    auto title = lower(text_of(doc, "title"));
    if (title.empty() && !type.empty()) {
      // "/problems/invalid_input" -> "invalid input"
      title = type.substr(type.rfind('/') + 1);
      std::replace(title.begin(), title.end(), '_', ' ');
    }
    if (!title.empty())
      text += " " + title;
    auto detail = text_of(doc, "detail");
    auto pointer = text_of(doc, "pointer");
    if (!pointer.empty() && detail.find(pointer) == std::string::npos)
      text += ": " + pointer;
    if (!detail.empty())
      text += ": " + detail;
  } else if (!body.empty()) {
    text += ": " + quote(body);
  }
  return make_error(code, std::move(text));
}

// -- stream_reader ------------------------------------------------------------

stream_reader::stream_reader(uint64_t after, stream_handlers handlers)
  : handlers_(std::move(handlers)),
    parser_([this](const std::string& type, const std::string& data) {
      return on_message(type, data);
    }) {
  out_.last_seq = after;
}

bool stream_reader::feed(std::string_view piece) {
  if (over_)
    return false;
  parser_.feed(piece);
  return !over_;
}

void stream_reader::finish() {
  if (!over_)
    parser_.finish();
}

bool stream_reader::on_message(const std::string& type,
                               const std::string& data) {
  auto stop = [this](stream_outcome::how how) {
    out_.ended = how;
    over_ = true;
    return false;
  };
  if (type == "end" || type == "close") {
    out_.data = try_parse_json(data);
    if (out_.data.is_discarded())
      out_.data = json{};
    return stop(type == "end" ? stream_outcome::how::ended
                              : stream_outcome::how::closed);
  }
  auto doc = try_parse_json(data);
  if (type == "token") {
    if (!handlers_.on_token || !doc.is_object())
      return true;
    event ev;
    ev.execution_id = text_of(doc, "execution_id");
    ev.time_us = doc.contains("time_us") ? number_of<int64_t>(doc, "time_us")
                                         : wall_now_us();
    ev.type = "token";
    doc.erase("execution_id");
    ev.payload = json_value{std::move(doc)};
    return handlers_.on_token(ev) || stop(stream_outcome::how::stopped);
  }
  // Persisted events carry their sequence number as id; other messages
  // the client does not know are skipped, as an SSE client would.
  if (!parser_.has_id())
    return true;
  event ev;
  try {
    if (doc.is_discarded())
      throw std::invalid_argument("not JSON");
    ev = event_of(doc);
  } catch (const std::exception&) {
    broken_ = make_error(errc::codec_error,
                         "server: not an event in the stream (id "
                           + parser_.last_event_id() + "): " + quote(data));
    return stop(stream_outcome::how::dropped);
  }
  if (ev.seq <= out_.last_seq)
    return true; // seen before a reconnection
  out_.last_seq = ev.seq;
  if (out_.execution_id.empty())
    out_.execution_id = ev.execution_id;
  if (handlers_.on_event && !handlers_.on_event(ev))
    return stop(stream_outcome::how::stopped);
  return true;
}

// -- api_client ---------------------------------------------------------------

api_client::api_client(std::string base_url, std::string token)
  : base_(std::move(base_url)), token_(std::move(token)) {
  while (!base_.empty() && base_.back() == '/')
    base_.pop_back();
}

std::string
api_client::url(std::string_view path,
                const std::vector<std::pair<std::string, std::string>>& query)
  const {
  auto out = base_ + std::string{path};
  char sep = '?';
  for (const auto& [key, value] : query) {
    out += sep + key + "=" + percent_encode(value);
    sep = '&';
  }
  return out;
}

net::http_request api_client::make_request(std::string method,
                                           std::string url,
                                           milliseconds timeout) const {
  net::http_request req;
  req.method = std::move(method);
  req.url = std::move(url);
  req.timeout = timeout;
  req.max_response_bytes = 256u << 20;
  // The user's own server: loopback and private addresses are fine.
  req.policy.allow_loopback = true;
  req.policy.allow_private = true;
  req.headers.set("Accept", "application/json");
  if (!token_.empty())
    req.headers.set("Authorization", "Bearer " + token_);
  req.cancel_flag = cancel_;
  return req;
}

caf::error api_client::transport_error(const caf::error& err) const {
  auto code = cadre::code_of(err);
  if (code == errc::cancelled)
    return err;
  // As the user wrote it, unless it carries credentials or a query.
  auto where = base_.find_first_of("@?#") == std::string::npos
                 ? base_
                 : net::redact_url(base_);
  if (code == errc::unavailable)
    return make_error(code,
                      "cannot reach cadre serve at " + where + ": "
                        + message_of(err));
  return make_error(code, "cadre serve at " + where + ": " + message_of(err));
}

caf::error api_client::answer_error(const net::http_request& req,
                                    const std::string& what) const {
  return make_error(errc::codec_error,
                    "server: unexpected answer to " + req.method + " "
                      + net::redact_url(req.url) + ": " + what);
}

caf::error api_client::status_error(const net::http_response& resp) {
  last_problem_ = try_parse_json(resp.body);
  if (last_problem_.is_discarded())
    last_problem_ = json{};
  auto err = problem_error(resp.status, resp.body);
  if (resp.status == 401 && token_.empty())
    return make_error(cadre::code_of(err),
                      message_of(err) + " (set CADRE_TOKEN)");
  return err;
}

expected<json> api_client::call(net::http_request req) {
  expected<net::http_response> resp = make_error(errc::internal, "not sent");
  if (req.method == "GET") {
    // Reads are safe to repeat: over a restart, 429 and 503.
    net::retry_policy retry;
    retry.max_attempts = 3;
    retry.max_delay = milliseconds{5'000};
    resp = net::perform_with_retry(calls_, req, retry);
  } else {
    resp = calls_.perform(req);
  }
  if (!resp)
    return transport_error(resp.error());
  if (resp->status < 200 || resp->status >= 300)
    return status_error(*resp);
  if (resp->body.empty())
    return json{};
  auto doc = try_parse_json(resp->body);
  if (doc.is_discarded())
    return answer_error(req, "not JSON: " + quote(resp->body));
  return doc;
}

expected<stream_outcome> api_client::stream(net::http_request req,
                                            uint64_t after,
                                            const stream_handlers& handlers) {
  req.headers.set("Accept", "text/event-stream");
  req.timeout = stream_timeout;
  req.idle_timeout = stream_idle;
  req.max_response_bytes = UINT64_MAX;
  stream_reader reader{after, handlers};
  bool answered = false;
  req.on_body = [&](std::string_view piece) {
    answered = true;
    return reader.feed(piece);
  };
  auto resp = streams_.perform(req);
  if (reader.broken())
    return reader.broken();
  auto out = reader.outcome();
  if (!resp) {
    if (out.ended != stream_outcome::how::dropped)
      return out; // the reader ended the transfer
    if (!answered || cadre::code_of(resp.error()) == errc::cancelled)
      return transport_error(resp.error());
    out.error = transport_error(resp.error());
    return out;
  }
  if (resp->status < 200 || resp->status >= 300)
    return status_error(*resp);
  reader.finish();
  if (reader.broken())
    return reader.broken();
  out = reader.outcome();
  if (out.execution_id.empty())
    if (auto* id = resp->headers.find("X-Execution-Id"))
      out.execution_id = *id;
  if (out.ended == stream_outcome::how::dropped)
    out.error = make_error(errc::unavailable,
                           "the server ended the stream without `end`");
  return out;
}

expected<stream_outcome>
api_client::submit_stream(const json& body, const stream_handlers& handlers) {
  auto req = make_request("POST", url("/v1/executions"), stream_timeout);
  req.headers.set("Content-Type", "application/json");
  req.body = dump_json(body);
  return stream(std::move(req), 0, handlers);
}

expected<execution_info> api_client::execution(const std::string& id) {
  auto req = make_request("GET", url("/v1/executions/" + percent_encode(id)),
                          call_timeout);
  auto doc = call(req);
  if (!doc)
    return doc.error();
  try {
    return info_of(*doc);
  } catch (const std::exception& e) {
    return answer_error(req, e.what());
  }
}

expected<api_client::execution_page>
api_client::executions(const std::string& status, const std::string& cursor) {
  std::vector<std::pair<std::string, std::string>> query{{"limit", "1000"}};
  if (!status.empty())
    query.emplace_back("status", status);
  if (!cursor.empty())
    query.emplace_back("cursor", cursor);
  auto req = make_request("GET", url("/v1/executions", query), call_timeout);
  auto doc = call(req);
  if (!doc)
    return doc.error();
  try {
    execution_page page;
    for (const auto& x : doc->at("executions"))
      page.executions.push_back(info_of(x));
    page.next_cursor = text_of(*doc, "next_cursor");
    return page;
  } catch (const std::exception& e) {
    return answer_error(req, e.what());
  }
}

expected<api_client::event_page>
api_client::events(const std::string& id, uint64_t after, uint32_t limit) {
  auto req = make_request("GET",
                          url("/v1/executions/" + percent_encode(id)
                                + "/events",
                              {{"after", std::to_string(after)},
                               {"limit", std::to_string(limit)}}),
                          call_timeout);
  auto doc = call(req);
  if (!doc)
    return doc.error();
  try {
    event_page page;
    for (const auto& x : doc->at("events"))
      page.events.push_back(event_of(x));
    if (auto next = doc->find("next_after");
        next != doc->end() && next->is_number())
      page.next_after = next->get<uint64_t>();
    return page;
  } catch (const std::exception& e) {
    return answer_error(req, e.what());
  }
}

expected<stream_outcome>
api_client::stream_events(const std::string& id, uint64_t after, bool resume,
                          const stream_handlers& handlers) {
  auto path = "/v1/executions/" + percent_encode(id) + "/events";
  auto req = make_request("GET",
                          resume || after == 0
                            ? url(path)
                            : url(path, {{"after", std::to_string(after)}}),
                          stream_timeout);
  if (resume && after > 0)
    req.headers.set("Last-Event-ID", std::to_string(after));
  return stream(std::move(req), after, handlers);
}

expected<stream_outcome> api_client::follow(const std::string& id,
                                            uint64_t after,
                                            const stream_handlers& handlers,
                                            const follow_options& opts) {
  uint64_t last = after;
  uint32_t misses = 0;
  bool resume = false;
  auto cancelled = [this] { return cancel_ && cancel_->load(); };
  for (;;) {
    auto out = stream_events(id, last, resume, handlers);
    std::string why;
    bool progressed = false;
    if (out) {
      progressed = out->last_seq > last;
      last = std::max(last, out->last_seq);
      if (out->ended == stream_outcome::how::ended
          || out->ended == stream_outcome::how::stopped)
        return out;
      if (out->ended == stream_outcome::how::closed)
        why = "the server closed the stream ("
              + text_of(out->data, "reason") + ")";
      else
        why = message_of(out->error);
    } else {
      // The first connection's failure is the answer; later ones may be a
      // restarting server.
      if (!resume || !retryable(out.error()))
        return out.error();
      why = message_of(out.error());
    }
    misses = progressed ? 1 : misses + 1;
    if (misses > opts.max_reconnects)
      return make_error(errc::unavailable,
                        "lost the event stream of execution " + id + " after "
                          + std::to_string(opts.max_reconnects)
                          + " reconnections: " + why);
    auto delay = std::min(max_backoff,
                          opts.base_delay * (1 << std::min(misses - 1, 8u)));
    for (auto waited = milliseconds{0}; waited < delay;
         waited += milliseconds{20}) {
      if (cancelled())
        return make_error(errc::cancelled, "interrupted");
      std::this_thread::sleep_for(milliseconds{20});
    }
    resume = true;
  }
}

expected<uint64_t> api_client::answer(const std::string& id,
                                      const std::string& task,
                                      const json& value) {
  auto req = make_request("POST",
                          url("/v1/executions/" + percent_encode(id)
                              + "/input"),
                          call_timeout);
  req.headers.set("Content-Type", "application/json");
  req.body = dump_json(json{{"task", task}, {"value", value}});
  auto doc = call(req);
  if (!doc)
    return doc.error();
  if (auto seq = doc->find("seq"); seq != doc->end() && seq->is_number())
    return seq->get<uint64_t>();
  return answer_error(req, "no seq in " + quote(dump_json(*doc)));
}

expected<bool> api_client::cancel(const std::string& id) {
  auto req = make_request("POST",
                          url("/v1/executions/" + percent_encode(id)
                              + "/cancel"),
                          call_timeout);
  auto doc = call(req);
  if (!doc)
    return doc.error();
  if (auto c = doc->find("cancelled"); c != doc->end() && c->is_boolean())
    return c->get<bool>();
  return answer_error(req, "no cancelled in " + quote(dump_json(*doc)));
}

expected<json> api_client::state(const std::string& id, uint64_t at) {
  std::vector<std::pair<std::string, std::string>> query;
  if (at > 0)
    query.emplace_back("at", std::to_string(at));
  return call(make_request("GET",
                           url("/v1/executions/" + percent_encode(id)
                                 + "/state",
                               query),
                           call_timeout));
}

expected<json> api_client::diff(const std::string& a, const std::string& b) {
  return call(make_request("GET",
                           url("/v1/executions/" + percent_encode(a)
                               + "/diff/" + percent_encode(b)),
                           call_timeout));
}

expected<void>
api_client::export_bundle(const std::string& id,
                          const std::function<bool(std::string_view)>& sink) {
  // Not retried: what was written cannot be taken back.
  auto req = make_request("GET",
                          url("/v1/executions/" + percent_encode(id)
                              + "/export"),
                          stream_timeout);
  req.headers.set("Accept", "application/x-ndjson");
  req.idle_timeout = stream_idle;
  req.on_body = sink;
  auto resp = calls_.perform(req);
  if (!resp)
    return transport_error(resp.error());
  if (resp->status < 200 || resp->status >= 300)
    return status_error(*resp);
  return {};
}

expected<json> api_client::import_bundle(const std::string& file) {
  // A bundle of gigabytes takes what it takes to send and import; the
  // server disconnects a client that stops sending (server.read_timeout).
  auto req = make_request("POST", url("/v1/imports"), stream_timeout);
  req.headers.set("Content-Type", "application/x-ndjson");
  req.body_file = file;
  return call(std::move(req));
}

expected<json> api_client::fork(const fork_request& r) {
  auto req = make_request("POST",
                          url("/v1/executions/"
                              + percent_encode(r.execution_id) + "/fork"),
                          call_timeout);
  req.headers.set("Content-Type", "application/json");
  json body{{"dry_run", r.dry_run}};
  if (r.at_seq > 0)
    body["at"] = r.at_seq;
  if (!r.input_override.is_null())
    body["input"] = r.input_override.get();
  if (!r.definition_override.is_null())
    body["definition"] = r.definition_override.get();
  if (!r.outputs.is_null())
    body["outputs"] = r.outputs.get();
  if (!r.rerun.empty())
    body["rerun"] = r.rerun;
  if (!r.answers.is_null())
    body["answers"] = r.answers.get();
  req.body = body.dump();
  return call(std::move(req));
}

expected<json> api_client::tools() {
  auto req = make_request("GET", url("/v1/tools"), call_timeout);
  auto doc = call(req);
  if (!doc)
    return doc.error();
  if (auto list = doc->find("tools"); list != doc->end() && list->is_array())
    return *list;
  return answer_error(req, "no tools in " + quote(dump_json(*doc)));
}

expected<json> api_client::invoke_tool(const std::string& name,
                                       const json& input,
                                       int64_t timeout_ms) {
  auto timeout = timeout_ms > 0 ? milliseconds{timeout_ms} + invoke_margin
                                : invoke_default;
  auto req = make_request("POST",
                          url("/v1/tools/" + percent_encode(name)
                              + "/invoke"),
                          timeout);
  req.headers.set("Content-Type", "application/json");
  json body{{"input", input}};
  if (timeout_ms > 0)
    body["timeout_ms"] = timeout_ms;
  req.body = dump_json(body);
  auto doc = call(req);
  if (!doc)
    return doc.error();
  if (auto out = doc->find("output"); out != doc->end())
    return *out;
  return answer_error(req, "no output in " + quote(dump_json(*doc)));
}

expected<json> api_client::schedules() {
  auto req = make_request("GET", url("/v1/schedules"), call_timeout);
  auto doc = call(req);
  if (!doc)
    return doc.error();
  if (auto list = doc->find("schedules");
      list != doc->end() && list->is_array())
    return *list;
  return answer_error(req, "no schedules in " + quote(doc->dump()));
}

expected<json> api_client::nodes() {
  auto req = make_request("GET", url("/v1/nodes"), call_timeout);
  auto doc = call(req);
  if (!doc)
    return doc.error();
  if (auto list = doc->find("nodes"); list != doc->end() && list->is_array())
    return *list;
  return answer_error(req, "no nodes in " + quote(doc->dump()));
}

expected<json> api_client::tree() {
  return call(make_request("GET", url("/v1/tree"), call_timeout));
}

expected<json> api_client::agent(const std::string& id) {
  // Each segment encoded and the slashes of the id kept ("e1/researcher"):
  // the route takes them as they are.
  std::string path = "/v1/agents/";
  for (size_t pos = 0;;) {
    auto slash = id.find('/', pos);
    path += percent_encode(id.substr(pos, slash - pos));
    if (slash == std::string::npos)
      break;
    path += '/';
    pos = slash + 1;
  }
  return call(make_request("GET", url(path), call_timeout));
}

expected<std::string> api_client::metrics() {
  auto req = make_request("GET", url("/metrics"), call_timeout);
  req.headers.set("Accept", "text/plain");
  auto resp = calls_.perform(req);
  if (!resp)
    return transport_error(resp.error());
  if (resp->status < 200 || resp->status >= 300)
    return problem_error(resp->status, resp->body);
  return std::move(resp->body);
}

} // namespace cadre::runtime::cli
