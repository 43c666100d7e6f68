#include "llm_cache.hpp"

#include <cstdio>

#include "cadre/messages/json_text.hpp"

namespace cadre::actors::llm_cache {

namespace {

// FNV-1a: stable across builds and runs, unlike std::hash. It only finds
// the entry; hit() compares the stored request.
std::string hash_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(h));
  return buf;
}

} // namespace

json key_of(const llm_request& req, const json& script) {
  json key = req;
  key.erase("stream");
  key["script"] = script;
  return key;
}

std::string log_of(const json& key) {
  return "llmcache:" + hash_hex(dump_json(key));
}

std::optional<llm_response> hit(const std::vector<event>& entry,
                                const json& key) {
  if (entry.empty())
    return std::nullopt;
  const auto& e = entry.front().payload.get();
  if (!e.is_object() || !e.contains("request") || e["request"] != key
      || !e.contains("response"))
    return std::nullopt;
  try {
    return e["response"].get<llm_response>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

append_request entry(const std::string& log, const json& key,
                     const llm_response& res, int64_t now_us) {
  append_request c;
  c.events.push_back(event{log, 1, now_us, "llm_cached",
                           json_value{json{{"request", key},
                                           {"response", json(res)}}}});
  return c;
}

} // namespace cadre::actors::llm_cache
