#pragma once

// Forward declarations of cadre's message types, for headers that only pass
// them around.

#include <cstdint>

namespace cadre {

enum class errc : uint8_t;
class json_value;
struct submit_request;
struct human_input;
struct fork_request;
struct execution_info;
struct execution_filter;
struct task_request;
struct task_result;
struct event;
struct append_request;
struct definition_record;
struct agent_turn;
struct llm_request;
struct llm_response;

} // namespace cadre
