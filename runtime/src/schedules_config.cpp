#include "schedules_config.hpp"

#include "secrets_config.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "cadre/workflow/definition.hpp"

namespace cadre::runtime {

expected<std::vector<actors::scheduled_workflow>>
load_scheduled_workflows(const config::node_config& cfg,
                         const tools::tool_registry& registry) {
  std::vector<actors::scheduled_workflow> out;
  workflow::validation_context ctx;
  ctx.tool_exists = [&registry](const std::string& name) {
    return registry.contains(name);
  };
  ctx.secret_exists = [&cfg](const std::string& name) {
    return secret_defined(cfg, name);
  };
  auto agents = cfg.agents;
  ctx.agent_exists = [agents](const std::string& name) {
    return agents.is_object() && agents.contains(name);
  };
  for (const auto& spec : cfg.schedules) {
    auto what = spec.origin + ": schedule " + spec.name + ": ";
    auto parsed = workflow::parse_file(spec.workflow, ctx);
    if (!parsed.def) {
      std::string msg = what + "workflow " + spec.workflow + " is not valid";
      for (const auto& d : parsed.errors)
        msg += "\n  " + d.to_string();
      return make_error(errc::invalid_config, std::move(msg));
    }
    if (auto ok = workflow::check_schema(parsed.def->input_schema,
                                         spec.input, "input");
        !ok)
      return make_error(errc::invalid_config,
                        what + message_of(ok.error()));
    out.push_back(actors::scheduled_workflow{
      spec, json_value{std::move(parsed.def->document)}});
  }
  return out;
}

} // namespace cadre::runtime
