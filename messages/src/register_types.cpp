#include "cadre/messages/register_types.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/message.hpp>

#include "cadre/messages/interfaces.hpp"
#include "cadre/messages/type_ids.hpp"

namespace cadre {

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::cadre_messages>();
  // A program on another node subscribes its own sink to a node's bus: the
  // handle crosses the network inside (subscribe, id, sink), and CAF 0.17
  // serializes only the typed handles registered by name.
  cfg.add_message_type<event_sink_actor>("cadre::event_sink_actor");
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
