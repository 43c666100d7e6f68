#pragma once

// `cadre check` and `cadre repair`: a store examined for damage, and a
// damaged one salvaged (docs/operations.md#a-damaged-store). Private to
// runtime/.

#include <string>

namespace cadre::runtime::cli {

/// Checks the store in `dir` and prints the report (JSON with `json_out`).
/// Returns exit_ok when it is whole, exit_failed when damaged or when it
/// cannot be checked (no store, in use).
int cmd_check(const std::string& dir, bool json_out);

/// Repairs the store in `dir`: RocksDB salvages the intact table files and
/// WAL records, then the index is rebuilt from the logs where they
/// disagree, and the result is checked. Prints what was lost and what was
/// rebuilt. Returns exit_ok when the repaired store checks whole, else
/// exit_failed.
int cmd_repair(const std::string& dir, bool json_out);

} // namespace cadre::runtime::cli
