// embed: a CAF program of its own that speaks cadre's protocol through the
// installed package: its type-ID block beside cadre's, one actor system with
// both registered, and a cadre message printed through cadre's JSON mapping.
// docs/embedding.md explains each step.

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/io/middleman.hpp>
#include <caf/message.hpp>

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

} // namespace

int main(int argc, char** argv) {
  config cfg;
  // The middleman is what reaches a node's published actors.
  cfg.load<caf::io::middleman>();
  if (auto err = cfg.parse(argc, argv)) {
    std::cerr << "bad arguments: " << caf::to_string(err) << "\n";
    return EXIT_FAILURE;
  }
  caf::actor_system sys{cfg};
  return run(sys) ? EXIT_SUCCESS : EXIT_FAILURE;
}
