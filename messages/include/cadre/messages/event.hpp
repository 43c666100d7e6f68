#pragma once

// Events: the unit of the log, of subscriptions, of streaming and of replay.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_field.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre {

/// One entry of an execution's log. `seq` is dense per execution, from 1.
struct event {
  std::string execution_id;
  uint64_t seq = 0;
  int64_t time_us = 0; ///< wall clock, microseconds since the epoch
  std::string type;
  json_value payload;
};

template <class Inspector>
auto inspect(Inspector& f, event& x) {
  using namespace meta;
  return f(caf::meta::type_name("event"),
           field("execution_id", required), x.execution_id,
           field("seq", required), x.seq,
           field("time_us"), x.time_us,
           field("type", required), x.type,
           field("payload"), x.payload);
}

/// Events to append atomically, with the execution-index entries they change.
/// All events must be for executions whose next sequence numbers they carry.
struct append_request {
  std::vector<event> events;
  std::vector<execution_info> index;
  /// When not empty: remembered as the submission key of the first event's
  /// execution, so a repeated submission finds it.
  std::string idempotency_key;
};

template <class Inspector>
auto inspect(Inspector& f, append_request& x) {
  return f(caf::meta::type_name("append_request"), x.events, x.index,
           x.idempotency_key);
}

void to_json(json& j, const event& x);
void from_json(const json& j, event& x);

} // namespace cadre
