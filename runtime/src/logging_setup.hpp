#pragma once

// Operator log settings: the node config's `log` section, the
// CADRE_LOG_LEVEL and CADRE_LOG_FORMAT variables and the --log-level and
// --log-format flags, in that order of precedence (docs/operations.md#logs).

#include <string>

#include "cadre/config/node_config.hpp"
#include "cadre/log/log.hpp"

namespace cadre::runtime {

/// The global --log-level and --log-format flags; empty when not given.
struct log_flags {
  std::string level;
  std::string format;
};

/// What a process logs, and how.
struct log_settings {
  /// Default: warn, so that CLI commands print only what needs attention;
  /// `cadre serve` passes info.
  log::level level = log::level::warn;
  /// Default: text
  log::format format = log::format::text;
};

/// Reads `log.level` and `log.format` over `defaults`, then
/// CADRE_LOG_LEVEL and CADRE_LOG_FORMAT (an empty variable counts as
/// unset), then `flags`. Errors: errc::invalid_config naming the key,
/// variable or flag, e.g. "log.level: unknown level 'verbose' (known:
/// trace, debug, info, warn, error, off)".
[[nodiscard]] expected<log_settings>
log_settings_of(const config::node_config& cfg, const log_flags& flags,
                log_settings defaults = {});

/// log_settings_of, then log::init to stderr with the result. On an error
/// the current settings stay.
[[nodiscard]] expected<log_settings>
init_logging(const config::node_config& cfg, const log_flags& flags,
             log_settings defaults = {});

} // namespace cadre::runtime
