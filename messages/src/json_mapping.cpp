// JSON mapping of the message types: the shapes seen over HTTP, in events
// and in `--json` output. Each is read off the type's inspect(), where its
// fields are named once (json_inspector.hpp).

#include "cadre/messages/agent.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/task.hpp"
#include "json_inspector.hpp"

namespace cadre {

CADRE_JSON_MAPPING(submit_request)
CADRE_JSON_MAPPING(human_input)
CADRE_JSON_MAPPING(fork_request)
CADRE_JSON_MAPPING(execution_info)
CADRE_JSON_MAPPING(execution_filter)
CADRE_JSON_MAPPING(definition_record)
CADRE_JSON_MAPPING(task_request)
CADRE_JSON_MAPPING(task_result)
CADRE_JSON_MAPPING(event)
CADRE_JSON_MAPPING(llm_tool_call)
CADRE_JSON_MAPPING(llm_message)
CADRE_JSON_MAPPING(llm_tool_spec)
CADRE_JSON_MAPPING(llm_usage)
CADRE_JSON_MAPPING(llm_request)
CADRE_JSON_MAPPING(llm_response)

} // namespace cadre
