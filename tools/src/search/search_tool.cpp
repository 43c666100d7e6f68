// search: web search through a configured provider, a SearxNG instance
// (its JSON API) or DuckDuckGo's HTML endpoint. When no provider is
// configured, or the provider cannot be reached or answers badly, the call
// still succeeds with {available: false, reason}, so an agent or a workflow
// can go on without search.

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

void append_utf8(std::string& out, uint32_t cp) {
  if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    cp = 0xfffd;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

/// Decodes the character references search result pages use.
std::string decode_entities(std::string_view in) {
  static constexpr std::pair<std::string_view, std::string_view> named[] = {
    {"amp", "&"},   {"lt", "<"},    {"gt", ">"},     {"quot", "\""},
    {"apos", "'"},  {"nbsp", " "},  {"ndash", "–"},  {"mdash", "—"},
    {"hellip", "…"}, {"rsquo", "’"}, {"lsquo", "‘"}, {"rdquo", "”"},
    {"ldquo", "“"},
  };
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '&') {
      out += in[i];
      continue;
    }
    auto semi = in.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += '&';
      continue;
    }
    auto name = in.substr(i + 1, semi - i - 1);
    bool done = false;
    if (!name.empty() && name[0] == '#') {
      bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
      auto digits = name.substr(hex ? 2 : 1);
      uint32_t cp = 0;
      bool ok = !digits.empty();
      for (char c : digits) {
        int v = (c >= '0' && c <= '9')            ? c - '0'
                : hex && (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : hex && (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                  : -1;
        if (v < 0 || cp > 0x10ffff) {
          ok = false;
          break;
        }
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
      }
      if (ok) {
        append_utf8(out, cp);
        done = true;
      }
    } else {
      for (const auto& [key, text] : named)
        if (name == key) {
          out += text;
          done = true;
          break;
        }
    }
    if (done)
      i = semi;
    else
      out += '&';
  }
  return out;
}

/// The text of an HTML fragment: tags removed, entities decoded, white
/// space collapsed.
std::string html_text(std::string_view html) {
  std::string stripped;
  bool in_tag = false;
  for (char c : html) {
    if (c == '<')
      in_tag = true;
    else if (c == '>' && in_tag)
      in_tag = false;
    else if (!in_tag)
      stripped += c;
  }
  auto decoded = decode_entities(stripped);
  std::string out;
  bool space = false;
  for (char c : decoded) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
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

/// The value of attribute `name` in the start tag `tag`, or nullopt.
std::optional<std::string> attribute(std::string_view tag,
                                     std::string_view name) {
  size_t pos = 0;
  while ((pos = tag.find(name, pos)) != std::string_view::npos) {
    auto before = pos == 0 ? ' ' : tag[pos - 1];
    auto after = pos + name.size();
    if ((before == ' ' || before == '\t' || before == '\n')
        && after < tag.size() && tag[after] == '=' && after + 1 < tag.size()) {
      char quote = tag[after + 1];
      if (quote == '"' || quote == '\'') {
        auto end = tag.find(quote, after + 2);
        if (end == std::string_view::npos)
          return std::nullopt;
        return decode_entities(tag.substr(after + 2, end - after - 2));
      }
    }
    pos = after;
  }
  return std::nullopt;
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

/// The element whose start tag contains `marker` at or after `from`, as
/// (start tag, inner HTML, end position); nullopt when there is none.
struct element {
  std::string_view tag;
  std::string_view inner;
  size_t end;
  size_t start;
};

/// Where the class name `marker` occurs as a whole word at or after `from`.
size_t find_class(std::string_view html, std::string_view marker,
                  size_t from) {
  auto word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  };
  for (auto pos = html.find(marker, from); pos != std::string_view::npos;
       pos = html.find(marker, pos + 1)) {
    auto after = pos + marker.size();
    if ((pos == 0 || !word(html[pos - 1]))
        && (after >= html.size() || !word(html[after])))
      return pos;
  }
  return std::string_view::npos;
}

std::optional<element> find_element(std::string_view html,
                                    std::string_view marker, size_t from,
                                    size_t until = std::string_view::npos) {
  size_t pos = from, open = 0, close = 0;
  for (;; ++pos) {
    pos = find_class(html, marker, pos);
    if (pos == std::string_view::npos || pos >= until)
      return std::nullopt;
    open = html.rfind('<', pos);
    close = html.find('>', pos);
    if (close == std::string_view::npos)
      return std::nullopt;
    // Only a class inside a start tag counts, not one in text or CSS.
    if (open != std::string_view::npos && html.find('>', open) == close)
      break;
  }
  auto name_end = html.find_first_of(" \t\n>", open + 1);
  auto name = html.substr(open + 1, name_end - open - 1);
  auto end_tag = "</" + std::string{name};
  auto finish = html.find(end_tag, close);
  if (finish == std::string_view::npos)
    return std::nullopt;
  return element{html.substr(open, close - open + 1),
                 html.substr(close + 1, finish - close - 1),
                 finish + end_tag.size(), open};
}

/// Parses results out of a DuckDuckGo HTML results page. nullopt when the
/// page has neither results nor a "no results" notice (a changed page or a
/// bot check).
std::optional<std::vector<result>> parse_ddg(std::string_view html,
                                             size_t max) {
  std::vector<result> out;
  constexpr std::string_view link_marker = "result__a";
  constexpr std::string_view snippet_marker = "result__snippet";
  size_t pos = 0;
  bool saw_any = false;
  while (out.size() < max) {
    auto link = find_element(html, link_marker, pos);
    if (!link)
      break;
    saw_any = true;
    auto next = find_class(html, link_marker, link->end);
    pos = link->end;
    auto href = attribute(link->tag, "href");
    if (!href)
      continue;
    auto url = unwrap_ddg_link(*href);
    // Sponsored results go through an ad redirector.
    if (url.find("duckduckgo.com/y.js") != std::string::npos)
      continue;
    result r;
    r.title = html_text(link->inner);
    r.url = std::move(url);
    if (auto snip = find_element(html, snippet_marker, link->end, next))
      r.snippet = html_text(snip->inner);
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

expected<std::unique_ptr<tool>> make_search_tool(const json_value& settings) {
  auto obj = detail::settings_object(tool_name, settings);
  if (!obj)
    return std::move(obj.error());
  if (auto ok = net::check_setting_keys(tool_name, *obj,
                                        {"provider", "url", "max_results"});
      !ok)
    return std::move(ok.error());
  search_options opts;
  auto kind = net::string_setting(tool_name, *obj, "provider", "none");
  if (!kind)
    return std::move(kind.error());
  if (*kind == "searxng")
    opts.kind = provider::searxng;
  else if (*kind == "duckduckgo")
    opts.kind = provider::duckduckgo;
  else if (*kind != "none")
    return detail::settings_error(tool_name, "provider",
                                  "must be one of searxng, duckduckgo, none");
  auto url = net::string_setting(tool_name, *obj, "url", "");
  if (!url)
    return std::move(url.error());
  opts.url = std::move(*url);
  if (opts.kind == provider::duckduckgo && opts.url.empty())
    opts.url = default_ddg_url;
  if (opts.kind == provider::searxng && opts.url.empty())
    return detail::settings_error(tool_name, "url",
                                  "is required for provider searxng (the "
                                  "instance's base URL)");
  auto max = detail::uint_setting(tool_name, *obj, "max_results",
                                  opts.max_results, 1, 100);
  if (!max)
    return std::move(max.error());
  opts.max_results = *max;
  net::net_options defaults;
  defaults.timeout = std::chrono::milliseconds{10'000};
  defaults.retry.max_attempts = 2;
  auto net_opts = net::parse_net_options(tool_name, *obj, defaults);
  if (!net_opts)
    return std::move(net_opts.error());
  opts.net = std::move(*net_opts);
  auto t = std::make_unique<search_tool>(std::move(opts));
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
