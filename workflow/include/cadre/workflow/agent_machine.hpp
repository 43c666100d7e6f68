#pragma once

// The agent loop as a state machine (docs/agents.md): a pure fold of an
// agent's log ("agent:<id>") plus the decisions that turn stimuli (a turn
// asked for, a model's reply, a tool's result) into new events and
// actions. No actor code and no clock: the agent actor (actors/src/agent.cpp)
// passes `now` in, appends a step's events, then carries out its actions,
// the way the coordinator adapts workflow::machine.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cadre/messages/agent.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/workflow/agent_spec.hpp"

namespace cadre::workflow {

/// Event type names of an agent's log (docs/agents.md).
namespace agent_events {
/// An agent spec a later agent_turn_started names by its `spec_id`:
/// recorded once per distinct spec in a log, not with every turn.
inline constexpr const char* spec = "agent_spec";
inline constexpr const char* turn_started = "agent_turn_started";
inline constexpr const char* message = "agent_message";
inline constexpr const char* llm_requested = "llm_requested";
inline constexpr const char* llm_responded = "llm_responded";
inline constexpr const char* tool_called = "tool_called";
inline constexpr const char* tool_result = "tool_result";
inline constexpr const char* turn_completed = "agent_turn_completed";
inline constexpr const char* turn_failed = "agent_turn_failed";
/// Streamed text: a bus event only, never in the log.
inline constexpr const char* token = "agent_token";
inline constexpr const char* summary_requested = "memory_summary_requested";
inline constexpr const char* summarized = "memory_summarized";
inline constexpr const char* summary_failed = "memory_summary_failed";
} // namespace agent_events

/// The agent specs an agent log recorded (agent_spec events), by id. A turn
/// names its spec by id (`spec_id`); logs written before specs were
/// recorded apart hold it in each agent_turn_started (`spec`), and of()
/// reads either, so every reader of a turn's spec goes through here.
struct agent_spec_table {
  std::map<uint64_t, json> specs;

  /// Folds an agent_spec event; other events are ignored.
  void apply(const event& ev);

  /// Notes that a turn ran spec `id` (for trim(): the least recently used
  /// go first).
  void use(uint64_t id);

  /// Drops the least recently used specs until at most `keep` remain. A
  /// spec dropped is recorded again, under a new id, by the next turn that
  /// runs it; the log keeps every spec its turns name.
  void trim(size_t keep);

  /// The id for the next spec recorded: above every id the log has used,
  /// dropped ones included.
  uint64_t next_id() const {
    return last_id_ + 1;
  }

  /// The spec of an agent_turn_started payload, or null when its log lacks
  /// it.
  const json* of(const json& started) const;

  /// The id of a spec equal to `doc`, or 0 when none is recorded.
  uint64_t find(const json& doc) const;

  /// The `spec_id` of an agent_spec or agent_turn_started payload, or 0.
  static uint64_t id_of(const json& payload);

private:
  uint64_t last_id_ = 0;
  // When each spec held was last recorded or run (a count of uses).
  std::map<uint64_t, uint64_t> used_;
  uint64_t uses_ = 0;
};

/// The whole requests of an agent log's llm_requested events. The first
/// request of a log is recorded whole (`request`); each later one as what
/// changed since the previous llm_requested of the same log (`delta`: the
/// ranges of the previous request's messages it keeps, the messages it
/// adds, the other fields that differ), since a call mostly resends the
/// memory window the previous call sent. Logs written before hold every
/// request whole. Every reader of a recorded request folds the log through
/// here, in order (docs/agents.md#memory).
class agent_request_log {
public:
  /// Folds event `ev` of the log: for an llm_requested, its whole request;
  /// null for other events and for a request that does not read (neither
  /// does a later one recorded relative to it, until one recorded whole).
  const llm_request* apply(const event& ev);

  /// The payload of an llm_requested for call `call` of turn `turn` asking
  /// `req`, relative to the requests folded so far; `req` becomes the last.
  json record(const std::string& turn, uint32_t call, llm_request req);

  /// record() of the last request with the messages [first, last) appended
  /// and `call` as its turn number, without building that request whole
  /// and comparing it with the last (the next call of a turn only adds the
  /// reply and the tools' results). The last request must exist.
  json record_appended(const std::string& turn, uint32_t call,
                       const llm_message* first, const llm_message* last);

  /// The last request folded or recorded; null when none, or it did not
  /// read.
  const llm_request* last() const;

  /// An empty vector with the room of a request's messages before the
  /// last, to build the next request in: a request's messages (the memory
  /// window) are one large allocation, costly in glibc's malloc each call.
  std::vector<llm_message> storage();

private:
  std::optional<llm_request> last_;
  std::vector<llm_message> spare_;
};

/// Something the agent actor does once the events of its step are durable.
struct agent_action {
  enum kind_t {
    call_model,   ///< ask the model call `call`: last_request() while
                  ///< the call is pending (not copied into the action)
    call_summary, ///< ask the model `request` for a memory summary
    call_tools,   ///< run `tools` in parallel, each answered by tool_result
    answer,       ///< turn `turn` finished: answer who waits for it
  };
  kind_t kind = call_model;
  std::string turn;
  uint32_t call = 0;
  llm_request request;
  std::vector<llm_tool_call> tools;
  /// call_tools: the calls may go before this step's events are on disk
  /// (their tools declare no side effects; a crash before the append leaves
  /// nothing changed outside, and the turn goes on from the log). Else they
  /// go only once the events, their `tool_called` among them, are durable.
  bool early = false;
  /// answer: whether the turn completed (else it failed), and the agent's
  /// name (what metrics are labelled by).
  bool ok = false;
  std::string agent;
};

/// New events (already folded into the machine) and what to do after they
/// are on disk.
struct agent_step {
  std::vector<event> events;
  std::vector<agent_action> actions;

  bool empty() const {
    return events.empty() && actions.empty();
  }
};

/// Usage of a turn as it is recorded: tokens, cost, calls.
json zero_agent_usage();

/// The usage of the turn being run, as the log tells so far; recorded as
/// to_json() when the turn ends.
struct agent_usage {
  uint64_t input_tokens = 0;
  uint64_t output_tokens = 0;
  double cost_usd = 0;
  uint64_t llm_calls = 0;
  uint64_t tool_calls = 0;

  void add(const llm_usage& u);
  /// As zero_agent_usage() plus each call's usage, value types included.
  json to_json() const;
  bool operator==(const agent_usage& o) const;
};

/// The fold of a turn that ended.
struct agent_finished_turn {
  bool ok = false;
  json output;
  json usage;
  errc code = errc::internal;
  std::string message;
};

/// The turn being run, as far as the log tells.
struct agent_active_turn {
  std::string key; ///< the turn's idempotency key
  std::string execution;
  std::string task;
  uint32_t attempt = 1;
  /// In a fork: its parent, and the log of the parent's recorded model
  /// replies this turn's calls reuse (agent_turn::replies; empty: none).
  std::string fork_of;
  std::string replies;
  /// Not in the log: the deadline of the request that asked (0: none).
  int64_t deadline_us = 0;
  agent_spec spec;
  std::vector<llm_message> messages; ///< this turn's conversation
  uint32_t calls = 0;                ///< LLM calls requested
  bool llm_pending = false;          ///< requested, not answered
  std::vector<llm_tool_call> tool_calls;      ///< of the last reply
  std::map<std::string, llm_message> results; ///< call id -> tool message
  bool repaired = false;
  agent_usage usage;
  /// Summary memory: a summary call asked for and not answered, and
  /// whether this turn already tried one (a failed summary falls back to
  /// the window).
  bool summary_pending = false;
  bool summary_tried = false;
  size_t summary_to = 0;
  llm_request summary_request;
};

/// How many finished turns an agent machine keeps the answer of, by
/// default (llm.max_finished_turns, docs/agents.md#replay-and-resume).
inline constexpr size_t default_max_finished_turns = 1024;

/// How many times max_finished_turns an agent machine remembers the keys
/// of turns whose answers it no longer keeps (8 bytes a turn).
inline constexpr size_t forgotten_turns_factor = 16;

/// How many distinct specs an agent machine holds to reuse their recorded
/// ids; a turn that runs one it dropped records it in the log again. Not a
/// setting: past it a log only holds a spec more than once.
inline constexpr size_t max_held_specs = 64;

/// How many recent turns' prompts and answers an agent machine holds at
/// least, for the memory view (`cadre agent ID`), beyond what its requests can still
/// use; older ones are only in its log (docs/agents.md#memory).
inline constexpr size_t memory_view_turns = 10;

/// The log of agent `id`: "agent:<id>".
inline std::string agent_log_of(const std::string& id) {
  return "agent:" + id;
}

/// One agent's state. Not thread-safe: one agent actor owns it.
class agent_machine {
public:
  /// The machine of agent `id`, whose log is "agent:<id>", keeping the
  /// answers of its last `max_finished_turns` finished turns (at least 1),
  /// live and when its log is folded again.
  explicit agent_machine(std::string id,
                         size_t max_finished_turns
                         = default_max_finished_turns);

  /// Folds one event of the log (in sequence order).
  void apply(const event& ev);

  /// Starts turn `req`: records it and its prompt. Errors:
  /// errc::invalid_config when its spec does not read. The turn's first
  /// call comes from begin(), once the tools' schemas are known.
  [[nodiscard]] expected<agent_step> start(const agent_turn& req,
                                           int64_t now_us);

  /// The active turn's first LLM call, after a memory summary when one is
  /// due (memory_policy "summary").
  agent_step begin(int64_t now_us);

  /// Continues the active turn from wherever the log left it: the call or
  /// summary in flight runs again (at-least-once), unanswered tool calls
  /// are sent again, a recorded final answer is checked.
  agent_step resume(int64_t now_us);

  /// The model answered call `call` of turn `turn`: a final answer (checked
  /// against output_schema, with one repair call on a mismatch), or tool
  /// calls (failing the turn past max_iterations). Stale replies: empty.
  /// `cached`: from the response cache; `reused`: a fork's recorded reply
  /// to the same request (docs/replay.md#fork). Both are marked in the log.
  agent_step model_replied(const std::string& turn, uint32_t call,
                           llm_response res, bool cached, int64_t now_us,
                           bool reused = false);

  /// Call `call` of turn `turn` failed with `err`: the turn fails.
  agent_step model_failed(const std::string& turn, uint32_t call,
                          const caf::error& err, int64_t now_us);

  /// Tool call `call` of turn `turn` ended with `out` (an error goes back
  /// to the model as the call's result). When every call of the reply has
  /// its result, the next LLM call. Stale or unknown calls: empty.
  agent_step tool_done(const std::string& turn, const llm_tool_call& call,
                       const expected<json>& out, int64_t now_us);

  /// The summary asked for in turn `turn` came back, or failed (then the
  /// turn goes on with the plain window). Stale: empty.
  agent_step summary_replied(const std::string& turn, const llm_response& res,
                             bool cached, int64_t now_us);
  agent_step summary_failed(const std::string& turn,
                            const std::string& message, int64_t now_us);

  /// The deadline the request of the active turn `turn` carries.
  void set_deadline(const std::string& turn, int64_t deadline_us);

  /// A tool's offer (name, description, input schema), sent along with
  /// the requests of agents that may call it, and whether its calls may
  /// change something outside (tools::tool::side_effects; unknown: true).
  /// Not in the log: the pools tell it.
  void know_tool(llm_tool_spec spec, bool side_effects = true);
  bool knows_tool(const std::string& name) const;

  const std::string& id() const;
  const std::string& log() const;
  uint64_t last_seq() const;
  const agent_active_turn* active() const;

  /// How many distinct specs the machine holds (at most max_held_specs
  /// once a turn has started since the log was folded).
  size_t held_specs() const {
    return specs_.specs.size();
  }
  /// The log's last model request (the one in flight when the active turn
  /// has llm_pending), or null.
  const llm_request* last_request() const;
  /// Turn `turn` as it ended, when it is among the last
  /// max_finished_turns finished turns; else null.
  const agent_finished_turn* finished(const std::string& turn) const;
  /// Whether turn `turn` finished but its answer is no longer kept: one
  /// of the forgotten_turns_factor * max_finished_turns turns that ended
  /// before the kept ones (found by a 64-bit hash of the key). Older turns
  /// are not known at all.
  bool forgotten(const std::string& turn) const;
  /// Turns finished in the log, kept or not.
  uint64_t finished_turns() const;
  /// Prompts and final answers of the earlier turns still held: what a
  /// request can still use (the widest memory window of the log's turns,
  /// and under policy summary the messages not summarized yet, at most
  /// twice that window and a turn), and at least the last
  /// memory_view_turns turns. Live and when the log is folded again.
  const std::vector<llm_message>& history() const;
  /// Messages of earlier turns no longer held (in the log only).
  size_t earlier_messages() const;

  /// What `cadre agent memory` shows: history, summary, the active turn,
  /// and how many earlier turns and messages only the log holds.
  json view() const;

private:
  // What the decision that emits an event already holds in typed form, so
  // folding its own event does not read it back from the JSON payload.
  struct known {
    agent_spec* spec = nullptr;
    /// An llm_requested whose request record() already took as the last.
    bool recorded = false;
    const llm_response* response = nullptr;
    const llm_message* message = nullptr;
  };
  void fold(const event& ev, const known& k);
  void emit(const char* type, json payload, int64_t now_us, agent_step& out);
  void emit(const char* type, json payload, int64_t now_us, agent_step& out,
            const known& k);
  void request_model(int64_t now_us, agent_step& out);
  void final_answer(const llm_message& msg, int64_t now_us, agent_step& out);
  void finish(bool ok, json output, errc code, std::string message,
              int64_t now_us, agent_step& out);
  void fail(errc code, const std::string& message, int64_t now_us,
            agent_step& out);
  bool needs_summary() const;
  llm_request model_request(std::vector<llm_message> storage) const;
  llm_request summary_request(size_t to) const;
  bool current(const std::string& turn) const;

  std::string id_;
  std::string log_;
  uint64_t seq_ = 0;
  // The newest messages of memory; the `earlier_` before them (of
  // `earlier_turns_` turns) are in the log only. Indexes of memory (a
  // summary's from and to) count them too: history_[i - earlier_].
  std::vector<llm_message> history_;
  size_t earlier_ = 0;
  uint64_t earlier_turns_ = 0;
  // How many messages each held turn added, oldest first.
  std::deque<size_t> held_turns_;
  // The widest memory_window of the turns started in the log.
  size_t widest_window_ = 0;
  void forget_history(const agent_spec& spec);
  // Summary memory: the model's summary of memory [0, summarized_).
  std::string summary_;
  size_t summarized_ = 0;
  // The last max_finished_ finished turns, and their keys oldest first;
  // past the bound the oldest answer goes and its key's hash joins
  // forgotten_, a ring of the hashes of the turns forgotten last.
  void remember(const std::string& turn, agent_finished_turn f);
  size_t max_finished_;
  std::map<std::string, agent_finished_turn> finished_;
  std::deque<std::string> finished_order_;
  std::vector<uint64_t> forgotten_;
  size_t forgotten_next_ = 0;
  uint64_t finished_turns_ = 0;
  std::optional<agent_active_turn> active_;
  std::map<std::string, llm_tool_spec> tool_specs_;
  // Tools that declared no side effects: their calls may run early.
  std::set<std::string> pure_tools_;
  agent_spec_table specs_;
  agent_request_log requests_;
  // How many of the active turn's messages the log's last request holds,
  // when this machine built it in this turn and nothing else a request is
  // built from (memory, summary, tools) changed since: the turn's next
  // call is that request with the turn's newer messages appended.
  std::optional<size_t> sent_;
};

/// The JSON of a final answer: the whole text, else the first fenced block
/// (```json or ```) that parses. Discarded when there is none.
json answer_json(const std::string& text);

/// Why tool call `call` is refused before it runs, or nullopt: not one of
/// the agent's tools (or none offers it: `routed` false), every node
/// offering it lost during the call (`lost` true), or arguments that are
/// not a JSON object. The refusal goes back to the model as the result.
std::optional<caf::error> refuse_tool_call(const agent_spec& spec,
                                           const llm_tool_call& call,
                                           bool routed, bool lost);

} // namespace cadre::workflow
