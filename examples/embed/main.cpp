// embed: a CAF program of its own that speaks cadre's protocol through the
// installed package: its type-ID block beside cadre's, one actor system with
// both registered, and a cadre message printed through cadre's JSON mapping.
// Given a node's cluster address (`cadre_embed HOST PORT`), it connects to
// the node's member and (a) runs a workflow, receiving its events, (b) calls
// a tool, (c) answers a human task, (d) offers an actor of its own as a
// tool to the cluster and (e) has it called from another node of the
// cluster, if there is one. docs/embedding.md explains each step.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/io/middleman.hpp>
#include <caf/message.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/messages/cluster_protocol.hpp"
#include "cadre/messages/interfaces.hpp"
#include "cadre/messages/register_types.hpp"
#include "cadre/messages/type_ids.hpp"

namespace embed_example {

/// The program's own message type: a note it attaches to what it submits.
struct note {
  std::string author;
  std::string text;
};

template <class Inspector>
auto inspect(Inspector& f, note& x) {
  return f(caf::meta::type_name("note"), x.author, x.text);
}

} // namespace embed_example

// The program's block starts where cadre's reserved range ends, so neither
// block can take the other's IDs.
CAF_BEGIN_TYPE_ID_BLOCK(embed_example, cadre::first_free_type_id)
  CAF_ADD_TYPE_ID(embed_example, (embed_example::note))
CAF_END_TYPE_ID_BLOCK(embed_example)

namespace {

struct config : caf::actor_system_config {
  config() {
    cadre::register_types(*this);
    add_message_types<caf::id_block::embed_example>();
  }
};

// A workflow submitted with its definition inline: one echo task.
cadre::submit_request make_greeting_submission() {
  cadre::submit_request req;
  req.definition = cadre::json_value{cadre::json{
    {"name", "greeting"},
    {"version", "1"},
    {"tasks",
     {{{"id", "greet"},
       {"tool", "echo"},
       {"input", {{"text", "Hello, {{ input.name }}!"}}}}}},
    {"output", "{{ tasks.greet.output.text }}"}}};
  req.input = cadre::json_value{cadre::json{{"name", "Ada"}}};
  req.idempotency_key = "embed-example-1";
  req.source = "examples/embed";
  return req;
}

void print_type_id_ranges() {
  std::cout << "cadre type IDs: [" << caf::id_block::cadre_messages::begin << ", "
            << caf::id_block::cadre_messages::end << ")\n"
            << "cadre::first_free_type_id: " << cadre::first_free_type_id
            << "\n"
            << "embed_example type IDs: [" << caf::id_block::embed_example::begin
            << ", " << caf::id_block::embed_example::end << ")\n";
}

// What a node receives is a serialized caf::message: one that carries a type
// of each block must come back whole through the system's type registry.
bool both_blocks_survive_serialization(caf::actor_system& sys,
                                       const cadre::submit_request& req) {
  auto sent = caf::make_message(embed_example::note{"embed", "first run"},
                                req);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  if (auto err = sink(sent)) {
    std::cerr << "serializing failed: " << sys.render(err) << "\n";
    return false;
  }
  caf::message received;
  caf::binary_deserializer source{sys, buf};
  if (auto err = source(received)) {
    std::cerr << "deserializing failed: " << sys.render(err) << "\n";
    return false;
  }
  if (!received.match_elements<embed_example::note, cadre::submit_request>())
    return false;
  const auto& back = received.get_as<cadre::submit_request>(1);
  return received.get_as<embed_example::note>(0).text == "first run"
         && cadre::json(back) == cadre::json(req);
}

// Returns false when a step failed.
bool run(caf::actor_system& sys) {
  print_type_id_ranges();
  auto req = make_greeting_submission();
  std::cout << "submit_request as JSON: " << cadre::json(req).dump() << "\n";
  bool ok = both_blocks_survive_serialization(sys, req);
  std::cout << "both type blocks in one message: " << (ok ? "ok" : "FAILED")
            << "\n";
  return ok;
}


// -- Connecting to a node ----------------------------------------------------

// Every request to the node has a deadline; awaiting an execution has a
// longer one (the workflow runs meanwhile).
constexpr auto request_deadline = std::chrono::seconds{10};
constexpr auto execution_deadline = std::chrono::seconds{60};
// How often this program tells the node it lives: well within the node's
// suspect_after (2 s by default).
constexpr auto heartbeat_interval = std::chrono::milliseconds{250};

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

// Stops the actors it holds when it goes out of scope: the actor system
// waits for every actor before it shuts down.
class stop_at_scope_end {
public:
  template <class... Handles>
  explicit stop_at_scope_end(const Handles&... hs)
    : actors_{caf::actor_cast<caf::actor>(hs)...} {
  }
  stop_at_scope_end(const stop_at_scope_end&) = delete;
  stop_at_scope_end& operator=(const stop_at_scope_end&) = delete;
  ~stop_at_scope_end() {
    for (auto& a : actors_)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }

private:
  std::vector<caf::actor> actors_;
};

// The program's event sink: hands each batch the node's bus sends to the
// thread that waits for it (the main thread's scoped actor).
cadre::event_sink_actor::behavior_type
event_forwarder(cadre::event_sink_actor::pointer, caf::actor waiter) {
  return {
    [=](cadre::event_atom, std::vector<cadre::event>& events) {
      caf::anon_send(waiter, cadre::event_atom_v, std::move(events));
    },
  };
}

// Receives the events of execution `id` (others are skipped) until one of
// type `until` arrives; prints each. False when none came for the deadline.
bool receive_events(caf::scoped_actor& self, const std::string& id,
                    const std::string& until,
                    std::vector<cadre::event>& seen) {
  bool done = false;
  bool timed_out = false;
  self->receive_while([&] { return !done && !timed_out; })(
    [&](cadre::event_atom, std::vector<cadre::event>& events) {
      for (auto& ev : events) {
        if (ev.execution_id != id)
          continue;
        std::cout << "  event " << ev.seq << " " << ev.type << "\n";
        done = done || ev.type == until;
        seen.push_back(std::move(ev));
      }
    },
    caf::after(execution_deadline) >> [&] { timed_out = true; });
  if (timed_out)
    std::cerr << "no " << until << " event for " << id << "\n";
  return done;
}

// Prints the event types in arrival order, and whether their sequence
// numbers run 1, 2, 3, ... without a gap.
void print_event_order(const std::string& label,
                       const std::vector<cadre::event>& seen) {
  std::cout << label << " events:";
  bool in_order = true;
  for (size_t i = 0; i < seen.size(); ++i) {
    std::cout << " " << seen[i].type;
    in_order = in_order && seen[i].seq == i + 1;
  }
  std::cout << "\n" << label << " events in order: "
            << (in_order ? "yes" : "no") << "\n";
}

// Submits `req` on the node; the id of the new execution, or "" (printed).
std::string submit(caf::scoped_actor& self, const cadre::node_info& node,
                   const cadre::submit_request& req) {
  std::string id;
  auto executions = caf::actor_cast<cadre::executions_actor>(node.executions);
  self->request(executions, request_deadline, cadre::submit_atom_v, req)
    .receive([&](std::string& new_id) { id = std::move(new_id); },
             [&](caf::error& err) {
               std::cerr << "submit failed: " << self->system().render(err)
                         << "\n";
             });
  return id;
}

// Waits for execution `id` to finish; false when it did not in time.
bool await_execution(caf::scoped_actor& self, const cadre::node_info& node,
                     const std::string& id, cadre::execution_info& info) {
  bool ok = false;
  auto executions = caf::actor_cast<cadre::executions_actor>(node.executions);
  self->request(executions, execution_deadline, cadre::await_atom_v, id)
    .receive(
      [&](cadre::execution_info& done) {
        info = std::move(done);
        ok = true;
      },
      [&](caf::error& err) {
        std::cerr << "await " << id << " failed: "
                  << self->system().render(err) << "\n";
      });
  return ok;
}

// (a) A workflow submitted over the network, its events received as typed
// messages by an actor of this program.
bool run_workflow(caf::scoped_actor& self, const cadre::node_info& node) {
  auto bus = caf::actor_cast<cadre::event_bus_actor>(node.bus);
  auto sink = self->spawn(event_forwarder, caf::actor_cast<caf::actor>(self));
  stop_at_scope_end stop{sink};
  // The execution id is known only with submit's answer, and the first
  // events may be published before a subscription by id would arrive: so
  // the sink subscribes to every execution ("") first and events are
  // filtered by id. The node's middleman delivers one connection's messages
  // in the order they were sent, so the bus has the subscription before the
  // executions actor has the submission.
  self->send(bus, cadre::subscribe_atom_v, std::string{}, sink);
  auto id = submit(self, node, make_greeting_submission());
  if (id.empty())
    return false;
  std::cout << "(a) submitted " << id << "\n";
  std::vector<cadre::event> seen;
  bool completed = receive_events(self, id, "execution_completed", seen);
  self->send(bus, cadre::unsub_atom_v, std::string{}, sink);
  cadre::execution_info info;
  if (!completed || !await_execution(self, node, id, info))
    return false;
  print_event_order("(a)", seen);
  std::cout << "(a) status: " << info.status << "\n"
            << "(a) output: " << info.output.dump() << "\n";
  return info.status == "completed";
}

// (b) A tool called directly: a task_request to the node's echo pool.
bool call_tool(caf::scoped_actor& self, const cadre::node_info& node) {
  auto offer = std::find_if(node.tools.begin(), node.tools.end(),
                            [](const cadre::tool_offer& o) {
                              return o.name == "echo";
                            });
  if (offer == node.tools.end()) {
    std::cerr << "the node offers no echo tool\n";
    return false;
  }
  cadre::task_request req;
  req.task_id = "direct";
  req.tool = "echo";
  req.input = cadre::json_value{cadre::json{{"text", "straight to the pool"}}};
  req.deadline_us = now_us() + 10'000'000;
  req.idempotency_key = "embed-example/direct/1";
  bool ok = false;
  auto pool = caf::actor_cast<cadre::tool_pool_actor>(offer->pool);
  self->request(pool, request_deadline, cadre::run_atom_v, req)
    .receive(
      [&](cadre::task_result& result) {
        std::cout << "(b) echo answered: " << result.output.dump() << "\n";
        ok = true;
      },
      [&](caf::error& err) {
        std::cerr << "echo failed: " << self->system().render(err) << "\n";
      });
  return ok;
}

// (c) A human task answered by this program.
bool answer_human_task(caf::scoped_actor& self, const cadre::node_info& node) {
  cadre::submit_request req;
  req.definition = cadre::json_value{cadre::json{
    {"name", "approval"},
    {"version", "1"},
    {"tasks",
     {{{"id", "approve"},
       {"kind", "human"},
       {"prompt", "Ship it?"},
       {"answer_schema",
        {{"type", "object"},
         {"properties", {{"note", {{"type", "string"}}}}},
         {"required", {"note"}}}}}}},
    {"output", "{{ tasks.approve.output.note }}"}}};
  req.source = "examples/embed";
  auto bus = caf::actor_cast<cadre::event_bus_actor>(node.bus);
  auto sink = self->spawn(event_forwarder, caf::actor_cast<caf::actor>(self));
  stop_at_scope_end stop{sink};
  self->send(bus, cadre::subscribe_atom_v, std::string{}, sink);
  auto id = submit(self, node, req);
  if (id.empty())
    return false;
  std::cout << "(c) submitted " << id << "\n";
  std::vector<cadre::event> seen;
  if (!receive_events(self, id, "human_requested", seen))
    return false;
  std::cout << "(c) the node asks: "
            << seen.back().payload->value("prompt", "") << "\n";
  cadre::human_input answer{id, "approve",
                            cadre::json{{"note", "shipped by embed"}}};
  auto executions = caf::actor_cast<cadre::executions_actor>(node.executions);
  bool answered = false;
  self->request(executions, request_deadline, cadre::input_atom_v, answer)
    .receive([&](uint64_t seq) {
               std::cout << "(c) answer recorded as event " << seq << "\n";
               answered = true;
             },
             [&](caf::error& err) {
               std::cerr << "input failed: " << self->system().render(err)
                         << "\n";
             });
  bool completed = answered
                   && receive_events(self, id, "execution_completed", seen);
  self->send(bus, cadre::unsub_atom_v, std::string{}, sink);
  cadre::execution_info info;
  if (!completed || !await_execution(self, node, id, info))
    return false;
  print_event_order("(c)", seen);
  std::cout << "(c) status: " << info.status << "\n"
            << "(c) output: " << info.output.dump() << "\n";
  return info.status == "completed";
}

// (d) The program's tool: answers the text of its input in capitals, signed
// with the program's member name, so a workflow's output shows who ran it.
cadre::tool_pool_actor::behavior_type
shout_pool(cadre::tool_pool_actor::pointer, std::string tool_name,
           std::string member_name) {
  return {
    [=](cadre::run_atom, cadre::task_request& req)
      -> caf::result<cadre::task_result> {
      const auto& in = req.input.get();
      if (!in.is_object() || !in.contains("text") || !in["text"].is_string())
        return cadre::make_error(cadre::errc::invalid_input,
                                 tool_name + ": input.text must be a string");
      auto text = in["text"].get<std::string>();
      std::transform(text.begin(), text.end(), text.begin(), [](char c) {
        return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      });
      cadre::task_result result;
      result.output = cadre::json_value{
        cadre::json{{"text", text}, {"by", member_name}}};
      return result;
    },
    [=](cadre::describe_atom) {
      return cadre::json_value{cadre::json{
        {"name", tool_name},
        {"description", "Answers its input's text in capitals."},
        {"input_schema",
         {{"type", "object"},
          {"properties", {{"text", {{"type", "string"}}}}},
          {"required", {"text"}}}},
        {"output_schema",
         {{"type", "object"},
          {"properties",
           {{"text", {{"type", "string"}}}, {"by", {{"type", "string"}}}}}}},
        {"blocking", false},
        {"workers", 1}}};
    },
  };
}

// The program's member: answers the member interface minimally (the node
// sends it heartbeats, and its leave when it stops) and sends the node a
// heartbeat every heartbeat_interval once told to start.
using stand_in_member_actor
  = cadre::member_actor::extend<caf::reacts_to<cadre::timer_atom>>;

struct stand_in_state {
  static inline const char* name = "embed.member";
  cadre::node_info me;
  cadre::member_actor node;
  bool leaving = false;
};

stand_in_member_actor::behavior_type stand_in_member(
  stand_in_member_actor::stateful_pointer<stand_in_state> self,
  cadre::node_info me, cadre::member_actor node) {
  self->state.me = std::move(me);
  self->state.me.member = caf::actor_cast<caf::actor>(self);
  self->state.node = std::move(node);
  return {
    [=](cadre::join_atom, cadre::node_info&) {
      return std::vector<cadre::node_info>{self->state.me};
    },
    [](cadre::heartbeat_atom, cadre::node_info&) {
      // The node's heartbeats: this program places no work on the node by
      // itself, so it does not track the node's load.
    },
    [](cadre::leave_atom, const std::string&, uint64_t) {
      // The node leaves; the program's next request to it fails.
    },
    [=](cadre::get_atom, cadre::nodes_atom) {
      auto& me = self->state.me;
      return cadre::json_value{cadre::json::array(
        {{{"name", me.name}, {"incarnation", me.incarnation}, {"self", true}}})};
    },
    [=](cadre::get_atom) { return self->state.me; },
    [=](cadre::leave_atom) {
      // Heartbeats stop first: one arriving after the leave would not bring
      // the member back (a left incarnation stays left), but it is noise.
      auto& st = self->state;
      st.leaving = true;
      self->send(st.node, cadre::leave_atom_v, st.me.name, st.me.incarnation);
      return true;
    },
    [](cadre::put_atom, std::string&) {
      // A node's own HTTP URL; this program serves no HTTP API.
    },
    [=](cadre::timer_atom) {
      auto& st = self->state;
      if (st.leaving)
        return;
      self->send(st.node, cadre::heartbeat_atom_v, st.me);
      self->delayed_send(self, heartbeat_interval, cadre::timer_atom_v);
    },
  };
}

// This program's state in the node's member list, or "absent".
std::string state_on_node(caf::scoped_actor& self,
                          const cadre::member_actor& node,
                          const std::string& name) {
  std::string state = "absent";
  self->request(node, request_deadline, cadre::get_atom_v, cadre::nodes_atom_v)
    .receive(
      [&](cadre::json_value& nodes) {
        for (auto& n : nodes.get())
          if (n.value("name", "") == name)
            state = n.value("state", "");
      },
      [&](caf::error& err) { state = "unknown: " + self->system().render(err); });
  return state;
}

// Another member of the node's cluster that has an address, or "" (none).
std::string another_member(caf::scoped_actor& self,
                           const cadre::member_actor& node,
                           const std::string& node_name) {
  std::string address;
  self->request(node, request_deadline, cadre::get_atom_v, cadre::nodes_atom_v)
    .receive(
      [&](cadre::json_value& nodes) {
        for (auto& n : nodes.get())
          if (n.value("name", "") != node_name && n.value("state", "") == "up"
              && !n.value("address", "").empty())
            address = n.value("address", "");
      },
      [&](caf::error&) {});
  return address;
}

// Whether `other` offers `tool` relayed from `member`: the node this program
// joined tells the others about it in its heartbeats.
bool offers_relayed(caf::scoped_actor& self, const cadre::member_actor& other,
                    const std::string& tool, const std::string& member) {
  bool found = false;
  self->request(other, request_deadline, cadre::get_atom_v, cadre::nodes_atom_v)
    .receive(
      [&](cadre::json_value& nodes) {
        for (auto& n : nodes.get())
          for (auto& t : n.value("tools", cadre::json::array()))
            if (t.value("name", "") == tool
                && t.value("relayed_from", "") == member)
              found = true;
      },
      [&](caf::error&) {});
  return found;
}

// (e) The tool offered in (d), called by a workflow on another node of the
// cluster: that node cannot connect to this program (it has no address), so
// the node this program joined relays the call. True when the cluster has
// no other node.
bool call_from_another_node(caf::scoped_actor& self,
                            const cadre::member_actor& node,
                            const std::string& name,
                            const std::string& tool_name,
                            const cadre::submit_request& req,
                            const std::string& joined_execution) {
  cadre::node_info joined;
  self->request(node, request_deadline, cadre::get_atom_v)
    .receive([&](cadre::node_info& x) { joined = std::move(x); },
             [&](caf::error&) {});
  auto address = another_member(self, node, joined.name);
  if (address.empty()) {
    std::cout << "(e) the cluster has no other node\n";
    return true;
  }
  auto colon = address.rfind(':');
  auto other = self->system().middleman().remote_actor<cadre::member_actor>(
    address.substr(0, colon),
    static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  if (!other) {
    std::cerr << "cannot reach " << address << ": "
              << self->system().render(other.error()) << "\n";
    return false;
  }
  cadre::node_info other_info;
  self->request(*other, request_deadline, cadre::get_atom_v)
    .receive([&](cadre::node_info& x) { other_info = std::move(x); },
             [&](caf::error&) {});
  // The other node learns of the tool with the joined node's next heartbeat.
  bool offered = false;
  for (int i = 0; i < 100 && !offered; ++i) {
    offered = offers_relayed(self, *other, tool_name, name);
    if (!offered)
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  std::cout << "(e) node " << other_info.name << " offers " << tool_name
            << " relayed by " << joined.name << ": "
            << (offered ? "yes" : "no") << "\n";
  if (!offered)
    return false;
  auto id = submit(self, other_info, req);
  cadre::execution_info info;
  if (id.empty() || !await_execution(self, other_info, id, info))
    return false;
  bool ok = info.status == "completed" && info.output->is_object()
            && info.output->value("by", "") == name;
  std::cout << "(e) status on " << other_info.name << ": " << info.status
            << "\n(e) answered by this program: " << (ok ? "yes" : "no")
            << "\n";
  // The execution of (d) is the joined node's: asked about it, the other
  // node passes the question to its owner.
  auto executions
    = caf::actor_cast<cadre::executions_actor>(other_info.executions);
  std::string owned_status = "none";
  self->request(executions, request_deadline, cadre::status_atom_v,
                joined_execution)
    .receive([&](cadre::execution_info& x) { owned_status = x.status; },
             [&](caf::error& err) {
               owned_status = "error: " + self->system().render(err);
             });
  std::cout << "(e) " << other_info.name << " answers for " << joined.name
            << "'s execution: " << owned_status << "\n";
  return ok && owned_status == "completed";
}

// (d) An actor of this program offered to the cluster as a tool, called by a
// workflow running on the node. Leaves the cluster before it returns.
bool offer_tool(caf::scoped_actor& self, const cadre::member_actor& node,
                const cadre::node_info& node_info) {
  // Unique in the cluster: a restarted program is a new incarnation anyway.
  auto name = "embed-" + std::to_string(::getpid());
  auto tool_name = "embed_shout_" + std::to_string(::getpid());
  auto pool = self->spawn(shout_pool, tool_name, name);
  cadre::node_info me;
  me.name = name;
  me.incarnation = static_cast<uint64_t>(now_us());
  // No address: the node never connects to this program; it reaches the
  // program's actors over the connection the program opened.
  me.address = "";
  cadre::tool_offer offer;
  offer.name = tool_name;
  offer.pool = caf::actor_cast<caf::actor>(pool);
  offer.workers = 1;
  me.tools.push_back(offer);
  auto member = self->spawn(stand_in_member, me, node);
  stop_at_scope_end stop{pool, member};
  std::cout << "(d) joining as " << name << " offering " << tool_name << "\n";
  bool joined = false;
  // What the node hears carries the member's handle: the node sends it
  // heartbeats and its leave.
  me.member = caf::actor_cast<caf::actor>(member);
  self->request(node, request_deadline, cadre::join_atom_v, me)
    .receive(
      [&](std::vector<cadre::node_info>& members) {
        std::cout << "(d) joined; the node knows " << members.size()
                  << " member(s), itself first: " << members.front().name
                  << "\n";
        joined = true;
      },
      [&](caf::error& err) {
        std::cerr << "join failed: " << self->system().render(err) << "\n";
      });
  if (!joined)
    return false;
  self->send(member, cadre::timer_atom_v);
  std::cout << "(d) the node lists " << name << " as "
            << state_on_node(self, node, name) << "\n";
  cadre::submit_request req;
  req.definition = cadre::json_value{cadre::json{
    {"name", "shout"},
    {"version", "1"},
    {"tasks",
     {{{"id", "shout"},
       {"tool", tool_name},
       {"input", {{"text", "{{ input.text }}"}}}}}},
    {"output", "{{ tasks.shout.output }}"}}};
  req.input = cadre::json_value{cadre::json{{"text", "hello from the node"}}};
  req.source = "examples/embed";
  auto id = submit(self, node_info, req);
  cadre::execution_info info;
  bool ok = !id.empty() && await_execution(self, node_info, id, info);
  if (ok) {
    std::cout << "(d) status: " << info.status << "\n"
              << "(d) output: " << info.output.dump() << "\n";
    ok = info.status == "completed" && info.output->is_object()
         && info.output->value("by", "") == name;
    std::cout << "(d) answered by this program: " << (ok ? "yes" : "no")
              << "\n";
  }
  ok = call_from_another_node(self, node, name, tool_name, req, id) && ok;
  // Leaving: the node withdraws the tool and lists the member as left.
  self->request(member, request_deadline, cadre::leave_atom_v)
    .receive([](bool) {}, [](caf::error&) {});
  auto state = state_on_node(self, node, name);
  for (int i = 0; i < 50 && state != "left" && state != "absent"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    state = state_on_node(self, node, name);
  }
  std::cout << "(d) after leaving the node lists " << name << " as " << state
            << "\n";
  return ok && (state == "left" || state == "absent");
}

// Connects to the member published at host:port and runs (a) to (d).
bool run_against_node(caf::actor_system& sys, const std::string& host,
                      uint16_t port) {
  auto node = sys.middleman().remote_actor<cadre::member_actor>(host, port);
  if (!node) {
    std::cerr << "cannot reach the node at " << host << ":" << port << ": "
              << sys.render(node.error()) << "\n";
    return false;
  }
  caf::scoped_actor self{sys};
  cadre::node_info info;
  bool got = false;
  self->request(*node, request_deadline, cadre::get_atom_v)
    .receive(
      [&](cadre::node_info& x) {
        info = std::move(x);
        got = true;
      },
      [&](caf::error& err) {
        std::cerr << "get node_info failed: " << sys.render(err) << "\n";
      });
  if (!got)
    return false;
  std::cout << "connected to node " << info.name << " (" << info.tools.size()
            << " tools)\n";
  bool a = run_workflow(self, info);
  bool b = call_tool(self, info);
  bool c = answer_human_task(self, info);
  bool d = offer_tool(self, *node, info);
  std::cout << "network parts: a=" << a << " b=" << b << " c=" << c
            << " d=" << d << "\n";
  return a && b && c && d;
}

} // namespace

int main(int argc, char** argv) {
  // `cadre_embed [HOST PORT] [CAF options]`: with a node's cluster address
  // the program also connects to it.
  std::string host;
  uint16_t port = 0;
  if (argc >= 3 && argv[1][0] != '-') {
    host = argv[1];
    auto p = std::atoi(argv[2]);
    if (p <= 0 || p > 65535) {
      std::cerr << "bad port: " << argv[2] << "\n";
      return EXIT_FAILURE;
    }
    port = static_cast<uint16_t>(p);
    argv[2] = argv[0];
    argc -= 2;
    argv += 2;
  }
  config cfg;
  // The middleman is what reaches a node's published actors.
  cfg.load<caf::io::middleman>();
  // The node's listener refuses programs of another cluster or protocol
  // version at the handshake; "cadre" is the default cluster.name.
  cfg.set("middleman.app-identifiers",
          std::vector<std::string>{cadre::cluster_app_identifier("cadre")});
  // The node closes a connection silent for its down_after (5 s by
  // default); CAF's own heartbeats keep this one alive between requests.
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{std::chrono::milliseconds{500}});
  if (auto err = cfg.parse(argc, argv)) {
    std::cerr << "bad arguments: " << caf::to_string(err) << "\n";
    return EXIT_FAILURE;
  }
  caf::actor_system sys{cfg};
  bool ok = run(sys);
  if (ok && port != 0)
    ok = run_against_node(sys, host, port);
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
