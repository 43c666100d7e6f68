// The event bus fans each published batch out to every subscriber of all
// executions and, per execution, to that execution's subscribers.

#include <chrono>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <gtest/gtest.h>

#include "cadre/actors/spawn.hpp"
#include "cadre/messages/register_types.hpp"

using namespace cadre;

namespace {

event make_event(const std::string& id, uint64_t seq) {
  return event{id, seq, 0, "test", json_value{json{{"n", seq}}}};
}

// What a sink received, as "id/seq" each; empty when nothing came.
std::vector<std::string> received(caf::scoped_actor& sink) {
  std::vector<std::string> out;
  sink->receive(
    [&](event_atom, const std::vector<event>& evs) {
      for (const auto& ev : evs)
        out.push_back(ev.execution_id + "/" + std::to_string(ev.seq)
                      + "/" + ev.payload->dump());
    },
    caf::after(std::chrono::seconds{30}) >> [] {});
  return out;
}

} // namespace

TEST(EventBus, EverySubscriberGetsItsEvents) {
  caf::actor_system_config cfg;
  register_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto bus = actors::spawn_event_bus(sys);
  caf::scoped_actor self{sys};
  caf::scoped_actor all1{sys};
  caf::scoped_actor all2{sys};
  caf::scoped_actor only_a{sys};
  auto sink = [](caf::scoped_actor& x) {
    return caf::actor_cast<event_sink_actor>(x.ptr());
  };
  // One sender: the bus handles the subscriptions before the publish.
  self->send(bus, subscribe_atom_v, std::string{}, sink(all1));
  self->send(bus, subscribe_atom_v, std::string{}, sink(all2));
  self->send(bus, subscribe_atom_v, std::string{"a"}, sink(only_a));
  self->send(bus, publish_atom_v,
             std::vector<event>{make_event("a", 1), make_event("b", 1),
                                make_event("a", 2)});
  std::vector<std::string> all{"a/1/{\"n\":1}", "b/1/{\"n\":1}",
                               "a/2/{\"n\":2}"};
  EXPECT_EQ(received(all1), all);
  EXPECT_EQ(received(all2), all);
  EXPECT_EQ(received(only_a),
            (std::vector<std::string>{"a/1/{\"n\":1}", "a/2/{\"n\":2}"}));
  // Subscribers of all executions only: each still gets the whole batch.
  self->send(bus, unsub_atom_v, std::string{"a"}, sink(only_a));
  self->send(bus, publish_atom_v,
             std::vector<event>{make_event("a", 3), make_event("c", 1)});
  std::vector<std::string> next{"a/3/{\"n\":3}", "c/1/{\"n\":1}"};
  EXPECT_EQ(received(all1), next);
  EXPECT_EQ(received(all2), next);
  self->send_exit(bus, caf::exit_reason::user_shutdown);
}
