#pragma once

// The node config's `secrets:` read into the store the tool workers use.

#include <memory>

#include "cadre/config/node_config.hpp"
#include "cadre/lang/secrets.hpp"

namespace cadre::runtime {

/// Reads each secret's variable or file. One that cannot be read (an unset
/// or empty variable, a missing, empty or too large file) is kept as
/// unavailable: a task that uses it fails naming the secret and why, the
/// other tasks run.
std::shared_ptr<const tools::secret_store>
load_secrets(const config::node_config& cfg);

/// True when `cfg` defines secret `name` (workflow validation).
bool secret_defined(const config::node_config& cfg, const std::string& name);

} // namespace cadre::runtime
