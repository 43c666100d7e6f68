// cadre's type-ID block leaves room for the programs that embed it: it
// starts above caf::first_custom_type_id, ends below cadre::first_free_type_id,
// and a program's own block from there lives beside it in one actor system.
// cadre's atoms keep CAF's sense where their texts meet CAF's.

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/uniform_type_info_map.hpp>
#include <gtest/gtest.h>

#include "cadre/messages/register_types.hpp"
#include "cadre/messages/type_ids.hpp"

namespace embedder_probe {

struct probe {
  int value = 0;
};

template <class Inspector>
auto inspect(Inspector& f, probe& x) {
  return f(caf::meta::type_name("probe"), x.value);
}

} // namespace embedder_probe

// What an embedding program writes (docs/embedding.md#type-ids).
CAF_BEGIN_TYPE_ID_BLOCK(embedder_probe, cadre::first_free_type_id)
  CAF_ADD_TYPE_ID(embedder_probe, (embedder_probe::probe))
CAF_END_TYPE_ID_BLOCK(embedder_probe)

namespace {

// {atom name: atom text} of every CAF_ADD_ATOM line in `header`.
std::map<std::string, std::string> atoms_declared_in(const std::string& header) {
  std::ifstream in{header};
  EXPECT_TRUE(in) << "cannot read " << header;
  std::map<std::string, std::string> out;
  std::string line;
  const std::string macro = "CAF_ADD_ATOM(";
  while (std::getline(in, line)) {
    auto at = line.find(macro);
    if (at == std::string::npos || line.find("#define") != std::string::npos)
      continue;
    // CAF_ADD_ATOM(project, namespace, name, "text")
    std::stringstream args{line.substr(at + macro.size())};
    std::string project, ns, name, text;
    std::getline(args, project, ',');
    std::getline(args, ns, ',');
    std::getline(args, name, ',');
    std::getline(args, text, ')');
    auto trim = [](std::string s) {
      auto first = s.find_first_not_of(" \"");
      auto last = s.find_last_not_of(" \"");
      return first == std::string::npos ? std::string{}
                                        : s.substr(first, last - first + 1);
    };
    out[trim(name)] = trim(text);
  }
  return out;
}

} // namespace

TEST(TypeIds, CadreBlockLiesBetweenCafsCustomStartAndFirstFreeId) {
  using cadre_block = caf::id_block::cadre_messages;
  EXPECT_EQ(cadre::first_type_id, caf::first_custom_type_id + 1000);
  EXPECT_EQ(cadre_block::begin, cadre::first_type_id);
  EXPECT_EQ(caf::type_id<cadre::json_value>::value, cadre::first_type_id);
  EXPECT_GE(caf::type_id<cadre::submit_request>::value, cadre::first_type_id);
  EXPECT_LT(cadre_block::end, cadre::first_free_type_id);
  EXPECT_EQ(cadre::first_free_type_id, 2200);
}

TEST(TypeIds, EmbeddersBlockFromFirstFreeIdRegistersBesideCadres) {
  EXPECT_EQ(caf::type_id<embedder_probe::probe>::value,
            cadre::first_free_type_id);
  caf::actor_system_config cfg;
  cadre::register_types(cfg);
  cfg.add_message_types<caf::id_block::embedder_probe>();
  caf::actor_system sys{cfg};
  EXPECT_NE(sys.types().make_value("embedder_probe::probe"), nullptr);
  EXPECT_NE(sys.types().make_value("cadre::submit_request"), nullptr);
}

TEST(TypeIds, AtomsSharingTextWithCafsKeepCafsNameAndNoneIsSys) {
  auto cadre_atoms = atoms_declared_in(
    CADRE_SOURCE_DIR "/messages/include/cadre/messages/type_ids.hpp");
  auto caf_atoms = atoms_declared_in(CAF_TYPE_ID_HEADER);
  ASSERT_GT(cadre_atoms.size(), 20u);
  ASSERT_GT(caf_atoms.size(), 20u);
  std::map<std::string, std::string> caf_name_of;
  for (auto& [name, text] : caf_atoms)
    caf_name_of[text] = name;
  for (auto& [name, text] : cadre_atoms) {
    EXPECT_LE(text.size(), 10u) << name;
    // (sys, get, "info") is answered by every CAF actor before its handlers.
    EXPECT_NE(text, "sys") << name;
    auto same_text = caf_name_of.find(text);
    if (same_text != caf_name_of.end()) {
      EXPECT_EQ(name, same_text->second)
        << "cadre's " << name << " is CAF's " << same_text->second;
    }
  }
}
