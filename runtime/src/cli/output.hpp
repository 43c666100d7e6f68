#pragma once

// What the CLI prints at the end of a command, shared by its commands on
// an embedded node and those that talk to `cadre serve` (client_commands),
// so both print the same: exit codes, error lines, the final report of an
// execution, the executions table and the rows of `cadre events`. Private
// to runtime/.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::runtime::cli {

// Exit codes.
constexpr int exit_ok = 0;
constexpr int exit_failed = 1;  // the execution failed or was cancelled
constexpr int exit_usage = 2;   // bad command line, file, input or config
constexpr int exit_waiting = 3; // the execution waits for a person
constexpr int exit_out_of_memory = 4; // an allocation failed; restart
constexpr int exit_interrupted = 130; // SIGINT or SIGTERM (128 + SIGINT)

/// Appends model text `piece` to `out` for one terminal line: control
/// characters (a model must not move the cursor or change colours) and runs
/// of space become one space.
void append_visible(std::string& out, std::string_view piece);

/// Prints "cadre: <msg>" on stderr (without a second "cadre: " that
/// describe() puts before the cadre error category).
void print_error(std::string_view msg);

/// Parses a `--input` argument: JSON text, or @file with JSON in it;
/// errc::invalid_input naming `what` or the file, and the line and column
/// (not JSON, not UTF-8, nested too deeply).
[[nodiscard]] expected<json> parse_input(const std::string& arg,
                                         const std::string& what);

/// Parses the VALUE of `cadre input`: JSON, or else a bare word taken as a
/// string. errc::invalid_input when it is not UTF-8 or nests too deeply.
[[nodiscard]] expected<json> parse_answer(const std::string& arg);

/// The exit code of an execution in this state: 0 completed, 3 waiting,
/// 1 otherwise.
int exit_code_of(const execution_info& info);

/// Prints the end of a run: with `json_out` the execution as a "result"
/// object on stdout; else a completed execution's output on stdout and why
/// it did not complete on stderr. Returns exit_code_of(info).
int report(const execution_info& info, bool json_out);

/// Local time of `us` (microseconds since the epoch), "2026-01-31 12:00:00".
std::string time_text(int64_t us);

/// `cadre executions`: one JSON array, or a table.
void print_executions(const std::vector<execution_info>& list, bool json_out);

/// One event as `cadre events` prints it on stdout: its JSON, or a row with
/// its sequence number, time, type and description.
void print_event_row(const event& ev, bool json_out);

/// True for the event types that end an execution.
bool ends_execution(std::string_view type);

} // namespace cadre::runtime::cli
