#include "cadre/messages/register_types.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/message.hpp>

#include "cadre/messages/type_ids.hpp"

namespace cadre {

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::cadre_messages>();
  // The templated overload of CAF 0.17.6 does not compile; render by hand.
  cfg.add_error_category(caf::atom("cadre"),
                         [](uint8_t code, caf::atom_value,
                            const caf::message& ctx) {
                           auto out = "cadre: " + to_string(errc{code});
                           if (ctx.size() == 1
                               && ctx.match_element<std::string>(0))
                             out += ": " + ctx.get_as<std::string>(0);
                           else if (!ctx.empty())
                             out += ": " + to_string(ctx);
                           return out;
                         });
}

} // namespace cadre
