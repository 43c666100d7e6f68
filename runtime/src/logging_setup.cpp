#include "logging_setup.hpp"

#include <cstdlib>
#include <tuple>
#include <utility>

namespace cadre::runtime {

namespace {

// Prefixes parse_level's and parse_format's errors with where the value
// came from.
template <class T>
expected<T> named(const std::string& where, expected<T> x) {
  if (x)
    return x;
  return make_error(errc::invalid_config,
                    where + ": " + message_of(x.error()));
}

// Applies one source (a config key, a variable or a flag) to `out`.
expected<void> apply(const std::string& where, const std::string& value,
                     bool is_level, log_settings& out) {
  if (is_level) {
    auto l = named(where, log::parse_level(value));
    if (!l)
      return l.error();
    out.level = *l;
  } else {
    auto f = named(where, log::parse_format(value));
    if (!f)
      return f.error();
    out.format = *f;
  }
  return {};
}

} // namespace

expected<log_settings> log_settings_of(const config::node_config& cfg,
                                       const log_flags& flags,
                                       log_settings defaults) {
  auto out = defaults;
  const auto& section = cfg.log;
  if (!section.is_null() && !section.is_object())
    return make_error(errc::invalid_config, "log: expected a mapping");
  if (section.is_object())
    for (auto& [key, value] : section.items()) {
      if (key != "level" && key != "format")
        return make_error(errc::invalid_config,
                          "log." + key + ": unknown key (known: level, "
                                         "format)");
      if (!value.is_string())
        return make_error(errc::invalid_config,
                          "log." + key + ": expected a string");
      if (auto ok = apply("log." + key, value.get<std::string>(),
                          key == "level", out);
          !ok)
        return ok.error();
    }
  for (auto [name, is_level] : {std::pair{"CADRE_LOG_LEVEL", true},
                                std::pair{"CADRE_LOG_FORMAT", false}}) {
    auto* v = std::getenv(name);
    if (v == nullptr || *v == '\0')
      continue;
    if (auto ok = apply(name, v, is_level, out); !ok)
      return ok.error();
  }
  for (auto [name, value, is_level] :
       {std::tuple{"--log-level", &flags.level, true},
        std::tuple{"--log-format", &flags.format, false}}) {
    if (value->empty())
      continue;
    if (auto ok = apply(name, *value, is_level, out); !ok)
      return ok.error();
  }
  return out;
}

expected<log_settings> init_logging(const config::node_config& cfg,
                                    const log_flags& flags,
                                    log_settings defaults) {
  auto s = log_settings_of(cfg, flags, defaults);
  if (s)
    log::init(s->level, s->format, stderr);
  return s;
}

} // namespace cadre::runtime
