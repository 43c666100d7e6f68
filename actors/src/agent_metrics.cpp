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
  auto model = res && !res->model.empty() ? res->model : req.model;
  metric_labels ls{{"agent", req.agent}, {"profile", req.profile},
                   {"model", model}};
  auto with_outcome = ls;
  with_outcome.emplace_back("outcome", outcome);
  m->add("cadre_llm_calls_total", with_outcome);
  // A cached reply cost nothing this time.
  if (res && std::string_view{outcome} == "ok") {
    m->add("cadre_llm_input_tokens_total", ls,
           static_cast<double>(res->usage.input_tokens));
    m->add("cadre_llm_output_tokens_total", ls,
           static_cast<double>(res->usage.output_tokens));
    m->add("cadre_llm_cost_usd_total", ls, res->usage.cost_usd);
  }
}

void count_agent(const std::shared_ptr<metric_registry>& m, const char* name,
                 const metric_labels& labels) {
  if (m)
    m->add(name, labels);
}

} // namespace cadre::actors
