// Typed handles that programs on other nodes send to a node's actors cross
// the network inside messages: CAF 0.17 serializes only those registered
// by name (cadre::register_types).

#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/message.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <gtest/gtest.h>

#include "cadre/messages/interfaces.hpp"
#include "cadre/messages/register_types.hpp"

using namespace cadre;

namespace {

struct config : caf::actor_system_config {
  config() {
    register_types(*this);
  }
};

} // namespace

TEST(RemoteHandles, AnEventSinkSurvivesTheSubscribeMessage) {
  config cfg;
  caf::actor_system sys{cfg};
  auto sink = sys.spawn([]() -> event_sink_actor::behavior_type {
    return {[](event_atom, std::vector<event>&) {}};
  });
  auto sent = caf::make_message(subscribe_atom_v, std::string{"e1"}, sink);
  std::vector<char> buf;
  caf::binary_serializer out{sys, buf};
  auto err = out(sent);
  ASSERT_FALSE(err) << sys.render(err);
  caf::message received;
  caf::binary_deserializer in{sys, buf};
  err = in(received);
  ASSERT_FALSE(err) << sys.render(err);
  ASSERT_TRUE(
    (received.match_elements<subscribe_atom, std::string, event_sink_actor>()));
  EXPECT_EQ(received.get_as<event_sink_actor>(2), sink);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
}
