// parse_profile: one `llm.profiles.<name>` section into a profile. Common
// keys are checked here; the others go to profile::settings for the kind's
// factory to check.

#include <cctype>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "cadre/tools/llm/provider.hpp"
#include "llm/llm_support.hpp"

namespace cadre::tools::llm {

expected<profile> parse_profile(const std::string& name, const json& section) {
  profile p;
  p.name = name;
  auto bad = [&](std::string_view key, std::string_view what) {
    return detail::setting_error(p, key, what);
  };
  if (section.is_null())
    return bad("", "must be an object with at least `kind`");
  if (!section.is_object())
    return bad("", "must be an object");
  auto str = [&](const char* key, std::string& out) {
    return tools::detail::read_string(section, key, out, bad);
  };
  auto dur = [&](const char* key, std::chrono::milliseconds& out) {
    return tools::detail::read_duration(section, key, out, bad);
  };
  auto price = [&](const char* key, double& out) -> expected<void> {
    auto i = section.find(key);
    if (i == section.end() || i->is_null())
      return {};
    if (!i->is_number() || !std::isfinite(i->get<double>())
        || i->get<double>() < 0)
      return bad(key, "must be a number >= 0 (US dollars per million "
                      "tokens)");
    out = i->get<double>();
    return {};
  };
  for (auto r : {str("kind", p.kind), str("base_url", p.base_url),
                 str("model", p.model), str("api_key_env", p.api_key_env),
                 dur("connect_timeout", p.connect_timeout),
                 dur("timeout", p.timeout),
                 price("price_input_per_mtok", p.price_input_per_mtok),
                 price("price_output_per_mtok", p.price_output_per_mtok)})
    if (!r)
      return r.error();
  if (p.kind.empty())
    return bad("kind", "must not be empty");
  if (!p.api_key_env.empty() && !tools::detail::env_name(p.api_key_env))
    // Never echo the value: a key pasted here by mistake is a secret.
    return bad("api_key_env",
               "must be the name of an environment variable (letters, "
               "digits and _), not the key itself");
  if (p.base_url.empty())
    p.base_url = detail::default_base_url(p.kind);
  if (!p.base_url.empty() && p.base_url.rfind("http://", 0) != 0
      && p.base_url.rfind("https://", 0) != 0)
    return bad("base_url", "must start with http:// or https://");
  if (auto i = section.find("max_attempts");
      i != section.end() && !i->is_null()) {
    if (!i->is_number_integer() || i->get<int64_t>() < 1
        || i->get<int64_t>() > 100)
      return bad("max_attempts", "must be an integer in [1, 100]");
    p.max_attempts = static_cast<uint32_t>(i->get<int64_t>());
  }
  static constexpr std::string_view common[]
    = {"kind",         "base_url",
       "model",        "api_key_env",
       "connect_timeout", "timeout",
       "max_attempts", "price_input_per_mtok",
       "price_output_per_mtok"};
  p.settings = json::object();
  for (const auto& [key, value] : section.items()) {
    bool known = false;
    for (auto c : common)
      known = known || key == c;
    if (!known)
      p.settings[key] = value;
  }
  return p;
}

} // namespace cadre::tools::llm
