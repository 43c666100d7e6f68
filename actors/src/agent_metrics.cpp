#include "agent_metrics.hpp"

#include <string_view>

#include "cadre/messages/agent.hpp"

namespace cadre::actors {

void declare_agent_metrics(metric_registry& m) {
  m.declare("cadre_llm_calls_total",
            "LLM calls by agent, profile, model and outcome (ok, error, "
            "cached)");
  m.declare("cadre_llm_input_tokens_total",
            "Input (prompt) tokens the provider reported");
  m.declare("cadre_llm_output_tokens_total",
            "Output (completion) tokens the provider reported");
  m.declare("cadre_llm_cost_usd_total",
            "Cost in US dollars at the profile's prices");
  m.declare("cadre_agent_turns_total",
            "Agent turns finished, by agent and outcome");
  m.declare("cadre_agent_tool_calls_total",
            "Tool calls made by agents, by agent, tool and outcome");
}

// Labelled by the agent's name, never its id: ids grow with executions,
// and a series per execution would swamp a metrics store. Per-execution
// figures are in the events (task_completed, execution_completed).
void count_llm_call(const std::shared_ptr<metric_registry>& m,
                    const llm_request& req, const llm_response* res,
                    const char* outcome) {
  if (!m)
    return;
  // Every model call counts here: the names are made once, the labels
  // once a call.
  static const std::string calls = "cadre_llm_calls_total";
  static const std::string input = "cadre_llm_input_tokens_total";
  static const std::string output = "cadre_llm_output_tokens_total";
  static const std::string cost = "cadre_llm_cost_usd_total";
  metric_labels ls;
  ls.reserve(4);
  ls.emplace_back("agent", req.agent);
  ls.emplace_back("profile", req.profile);
  ls.emplace_back("model",
                  res && !res->model.empty() ? res->model : req.model);
  ls.emplace_back("outcome", outcome);
  m->add(calls, ls);
  ls.pop_back();
  // A cached reply cost nothing this time.
  if (res && std::string_view{outcome} == "ok") {
    m->add(input, ls, static_cast<double>(res->usage.input_tokens));
    m->add(output, ls, static_cast<double>(res->usage.output_tokens));
    m->add(cost, ls, res->usage.cost_usd);
  }
}

void count_agent(const std::shared_ptr<metric_registry>& m, const char* name,
                 const metric_labels& labels) {
  if (m)
    m->add(name, labels);
}

} // namespace cadre::actors
