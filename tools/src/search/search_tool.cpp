// search: web search through a configured provider, a SearxNG instance
// (its JSON API) or DuckDuckGo's HTML endpoint. When no provider is
// configured, or the provider cannot be reached or answers badly, the call
// still succeeds with {available: false, reason}, so an agent or a workflow
// can go on without search.

#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "cadre/tools/net/http_client.hpp"
#include "cadre/tools/tool.hpp"
#include "net/net_support.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools {

namespace {

constexpr std::string_view tool_name = "search";

enum class provider { none, searxng, duckduckgo };

constexpr std::string_view default_ddg_url
  = "https://html.duckduckgo.com/html/";

/// Settings of the search tool (`tools.search`).
struct search_options {
  /// "searxng", "duckduckgo" or "none". Default: none (search unavailable)
  provider kind = provider::none;
  /// searxng: the instance's base URL (required), "/search" is appended
  /// unless the path ends with it; duckduckgo: the HTML endpoint.
  /// Default: https://html.duckduckgo.com/html/ for duckduckgo
  std::string url;
  /// Most results one call may ask for. Default: 10
  uint64_t max_results = 10;
  /// Common network settings (net_support.hpp). Default: net_options with
  /// timeout 10 s and 2 attempts
  net::net_options net;
};

struct result {
  std::string title;
  std::string url;
  std::string snippet;
};

// -- HTML scraping (DuckDuckGo) -----------------------------------------------

// The page is read by libxml2's HTML parser, which recovers from any markup
// and decodes every character reference.

/// Once, before any thread parses (libxml2's own initialization is not
/// safe to race).
void init_libxml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

/// The value of attribute `name` of element `node`, or nullopt.
std::optional<std::string> attribute(xmlNode* node, const char* name) {
  std::unique_ptr<xmlChar, void (*)(void*)> value{
    xmlGetProp(node, reinterpret_cast<const xmlChar*>(name)), xmlFree};
  if (!value)
    return std::nullopt;
  return std::string{reinterpret_cast<const char*>(value.get())};
}

/// Whether element `node` lists `name` among its classes.
bool has_class(xmlNode* node, std::string_view name) {
  auto list = attribute(node, "class");
  if (!list)
    return false;
  constexpr std::string_view space = " \t\n\r\f";
  std::string_view rest{*list};
  while (!rest.empty()) {
    auto start = rest.find_first_not_of(space);
    if (start == std::string_view::npos)
      return false;
    rest.remove_prefix(start);
    auto word = rest.substr(0, rest.find_first_of(space));
    if (word == name)
      return true;
    rest.remove_prefix(word.size());
  }
  return false;
}

/// The text of an element: its descendants' text with white space (a
/// no-break space too) collapsed.
std::string text_of(xmlNode* node) {
  std::unique_ptr<xmlChar, void (*)(void*)> content{xmlNodeGetContent(node),
                                                    xmlFree};
  std::string_view in{content ? reinterpret_cast<const char*>(content.get())
                              : ""};
  std::string out;
  bool space = false;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    bool nbsp = c == '\xc2' && i + 1 < in.size() && in[i + 1] == '\xa0';
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || nbsp) {
      space = !out.empty();
      i += nbsp ? 1 : 0;
      continue;
    }
    if (space)
      out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string percent_decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    auto hexval = [](char c) {
      return (c >= '0' && c <= '9')   ? c - '0'
             : (c >= 'a' && c <= 'f') ? c - 'a' + 10
             : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                      : -1;
    };
    if (in[i] == '%' && i + 2 < in.size() && hexval(in[i + 1]) >= 0
        && hexval(in[i + 2]) >= 0) {
      out += static_cast<char>(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
      i += 2;
    } else if (in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

/// DuckDuckGo wraps result links as //duckduckgo.com/l/?uddg=<target>.
std::string unwrap_ddg_link(const std::string& href) {
  auto pos = href.find("uddg=");
  if (pos != std::string::npos) {
    auto end = href.find('&', pos);
    return percent_decode(std::string_view{href}.substr(
      pos + 5, end == std::string::npos ? std::string::npos : end - pos - 5));
  }
  if (href.rfind("//", 0) == 0)
    return "https:" + href;
  return href;
}

/// A result link (class result__a) or snippet (result__snippet).
struct mark {
  xmlNode* node;
  bool link;
};

/// The links and snippets below `node`, in document order.
void collect(xmlNode* node, std::vector<mark>& out) {
  for (auto* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE)
      continue;
    if (has_class(n, "result__a"))
      out.push_back({n, true});
    else if (has_class(n, "result__snippet"))
      out.push_back({n, false});
    collect(n->children, out);
  }
}

/// Parses results out of a DuckDuckGo HTML results page. nullopt when the
/// page has neither results nor a "no results" notice (a changed page or a
/// bot check).
std::optional<std::vector<result>> parse_ddg(std::string_view html,
                                             size_t max) {
  if (html.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return std::nullopt;
  init_libxml();
  std::unique_ptr<xmlDoc, void (*)(xmlDocPtr)> doc{
    htmlReadMemory(html.data(), static_cast<int>(html.size()), nullptr,
                   "UTF-8",
                   HTML_PARSE_RECOVER | HTML_PARSE_NOERROR
                     | HTML_PARSE_NOWARNING | HTML_PARSE_NONET),
    xmlFreeDoc};
  std::vector<mark> marks;
  if (doc)
    collect(xmlDocGetRootElement(doc.get()), marks);
  std::vector<result> out;
  bool saw_any = false;
  for (size_t i = 0; i < marks.size() && out.size() < max; ++i) {
    if (!marks[i].link)
      continue;
    saw_any = true;
    auto href = attribute(marks[i].node, "href");
    if (!href)
      continue;
    auto url = unwrap_ddg_link(*href);
    // Sponsored results go through an ad redirector.
    if (url.find("duckduckgo.com/y.js") != std::string::npos)
      continue;
    result r;
    r.title = text_of(marks[i].node);
    r.url = std::move(url);
    // The link's snippet: the first one before the next link.
    if (i + 1 < marks.size() && !marks[i + 1].link)
      r.snippet = text_of(marks[i + 1].node);
    if (!r.title.empty() && !r.url.empty())
      out.push_back(std::move(r));
  }
  if (!saw_any && html.find("no-results") == std::string_view::npos)
    return std::nullopt;
  return out;
}

// -- the tool -----------------------------------------------------------------

class search_tool final : public tool {
public:
  explicit search_tool(search_options opts) : opts_(std::move(opts)) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return std::string{tool_name};
  }

  tool_description describe() const override {
    return {
      std::string{tool_name},
      "Searches the web and returns result titles, URLs and snippets. When "
      "search is unavailable (not configured, offline, provider failing) it "
      "returns available: false with the reason instead of failing, so go "
      "on without it.",
      json{
        {"type", "object"},
        {"properties",
         {
           {"query",
            {{"type", "string"},
             {"minLength", 1},
             {"description", "What to search for."}}},
           {"max_results",
            {{"type", "integer"},
             {"minimum", 1},
             {"maximum", opts_.max_results},
             {"description", "Most results to return; default "
                               + std::to_string(default_results())
                               + "."}}},
         }},
        {"required", {"query"}},
        {"additionalProperties", false},
      },
      json{
        {"type", "object"},
        {"properties",
         {
           {"available", {{"type", "boolean"}}},
           {"reason",
            {{"type", "string"},
             {"description", "Why search is unavailable."}}},
           {"provider", {{"type", "string"}}},
           {"results",
            {{"type", "array"},
             {"items",
              {{"type", "object"},
               {"properties",
                {{"title", {{"type", "string"}}},
                 {"url", {{"type", "string"}}},
                 {"snippet", {{"type", "string"}}}}},
               {"required", {"title", "url", "snippet"}}}}}},
         }},
        {"required", {"available"}},
      },
    };
  }

  // A search reads only (a GET to the provider).
  bool side_effects() const override {
    return false;
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    const json& in = *input;
    // The schema says it all (its maximum is tools.search.max_results).
    if (auto ok = detail::check_input(tool_name, input_schema_, in); !ok)
      return std::move(ok.error());
    auto query = in.at("query").get<std::string>();
    uint64_t max = default_results();
    if (auto m = in.find("max_results"); m != in.end())
      max = *detail::as_uint(*m);
    switch (opts_.kind) {
      case provider::none:
        return unavailable("no search provider is configured "
                           "(tools.search.provider)");
      case provider::searxng:
        return searxng(query, max, ctx);
      case provider::duckduckgo:
        return duckduckgo(query, max, ctx);
    }
    return unavailable("unknown provider");
  }

private:
  uint64_t default_results() const {
    return std::min<uint64_t>(5, opts_.max_results);
  }

  static json_value unavailable(std::string reason) {
    return json_value{json{{"available", false}, {"reason", std::move(reason)}}};
  }

  static json_value available(std::string_view provider_name,
                              const std::vector<result>& results) {
    json list = json::array();
    for (const auto& r : results)
      list.push_back(
        json{{"title", r.title}, {"url", r.url}, {"snippet", r.snippet}});
    return json_value{json{{"available", true},
                           {"provider", provider_name},
                           {"results", std::move(list)}}};
  }

  /// Performs `req`; a failed exchange becomes the reason search is
  /// unavailable, except a cancellation, which stays an error.
  expected<net::http_response> fetch(net::http_request& req,
                                     std::string& reason,
                                     const tool_context& ctx) {
    auto resp = net::perform_with_retry(client_, req, opts_.net.retry);
    if (!resp) {
      if (code_of(resp.error()) == errc::cancelled)
        return net::tool_error(tool_name, resp.error());
      reason = message_of(resp.error());
      return resp;
    }
    if (resp->status < 200 || resp->status > 299) {
      reason = req.method + " " + net::redact_url(req.url) + ": status "
               + std::to_string(resp->status);
      if (!resp->body.empty())
        // Redacted before the cut, or a secret crossing it survives in part.
        reason += ": " + net::body_excerpt(ctx.redact(resp->body), 200);
    }
    return resp;
  }

  expected<json_value> searxng(const std::string& query, uint64_t max,
                               tool_context& ctx) {
    auto req = net::make_request(opts_.net, ctx);
    auto base = opts_.url;
    auto path_end = base.find_first_of("?#");
    auto path = std::string_view{base}.substr(0, path_end);
    if (path.size() < 7 || path.substr(path.size() - 7) != "/search") {
      if (!path.empty() && path.back() == '/')
        base.insert(path.size(), "search");
      else
        base.insert(path.size(), "/search");
    }
    req.url = net::append_query(base, "q=" + net::url_encode(query)
                                        + "&format=json");
    req.headers.add("Accept", "application/json");
    std::string reason;
    auto resp = fetch(req, reason, ctx);
    if (!resp && code_of(resp.error()) == errc::cancelled)
      return std::move(resp.error());
    if (!reason.empty()) {
      if (resp && resp->status == 403)
        reason += " (does the instance allow format=json? "
                  "search.formats in its settings.yml)";
      return unavailable("searxng: " + reason);
    }
    auto doc = try_parse_json(resp->body);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("results")
        || !doc["results"].is_array())
      return unavailable("searxng: the answer is not a JSON object with a "
                         "results array");
    std::vector<result> results;
    for (const auto& item : doc["results"]) {
      if (results.size() >= max)
        break;
      if (!item.is_object())
        continue;
      auto text = [&](const char* key) {
        auto i = item.find(key);
        return i != item.end() && i->is_string() ? i->get<std::string>()
                                                 : std::string{};
      };
      result r{text("title"), text("url"), text("content")};
      if (!r.url.empty())
        results.push_back(std::move(r));
    }
    return available("searxng", results);
  }

  expected<json_value> duckduckgo(const std::string& query, uint64_t max,
                                  tool_context& ctx) {
    auto req = net::make_request(opts_.net, ctx);
    req.url = net::append_query(opts_.url, "q=" + net::url_encode(query));
    req.headers.add("Accept", "text/html");
    std::string reason;
    auto resp = fetch(req, reason, ctx);
    if (!resp && code_of(resp.error()) == errc::cancelled)
      return std::move(resp.error());
    if (!reason.empty())
      return unavailable("duckduckgo: " + reason);
    if (!net::valid_utf8(resp->body))
      return unavailable("duckduckgo: the page is not UTF-8");
    auto results = parse_ddg(resp->body, max);
    if (!results)
      return unavailable("duckduckgo: no results could be read from the "
                         "page (a bot check or a changed layout)");
    return available("duckduckgo", *results);
  }

  search_options opts_;
  json_schema input_schema_;
  net::http_client client_;
};

} // namespace

namespace {

net::net_options search_net_defaults() {
  net::net_options defaults;
  defaults.timeout = std::chrono::milliseconds{10'000};
  defaults.retry.max_attempts = 2;
  return defaults;
}

} // namespace

json search_settings_schema() {
  auto props = net::net_settings_properties(search_net_defaults());
  props["provider"] = {{"enum", {"searxng", "duckduckgo", "none"}},
                       {"default", "none"},
                       {"description", "Where searches go."}};
  props["url"] = detail::string_setting(
    "searxng: the instance's base URL (required); duckduckgo: the HTML "
    "endpoint.",
    false);
  props["max_results"] = detail::integer_setting(
    search_options{}.max_results, 1, 100,
    "The most results one call may ask for.");
  return detail::settings_schema(std::move(props));
}

expected<std::unique_ptr<tool>> make_search_tool(const json_value& settings) {
  const json& obj = *settings;
  search_options opts;
  auto kind = detail::setting<std::string>(obj, "provider", "none");
  if (kind == "searxng")
    opts.kind = provider::searxng;
  else if (kind == "duckduckgo")
    opts.kind = provider::duckduckgo;
  opts.url = detail::setting(obj, "url", opts.url);
  if (opts.kind == provider::duckduckgo && opts.url.empty())
    opts.url = default_ddg_url;
  if (opts.kind == provider::searxng && opts.url.empty())
    return detail::settings_error(tool_name, "url",
                                  "is required for provider searxng (the "
                                  "instance's base URL)");
  opts.max_results = detail::setting(obj, "max_results", opts.max_results);
  opts.net = net::parse_net_options(tool_name, obj, search_net_defaults());
  auto t = std::make_unique<search_tool>(std::move(opts));
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
