#include "cadre/tools/llm/provider.hpp"

namespace cadre::tools::llm {

// First expansion: the factories, defined in src/llm/<kind>_provider.cpp.
#define CADRE_LLM_PROVIDER(kind)                                               \
  [[nodiscard]] expected<std::unique_ptr<provider>> make_##kind##_provider(    \
    const profile& p);
#include "providers.def"
#undef CADRE_LLM_PROVIDER

provider::~provider() = default;

bool provider::may_block() const {
  return true;
}

expected<std::unique_ptr<provider>> make_provider(const profile& p) {
  std::string known;
  // Second expansion: dispatch on the kind.
  // The parameter is not called `kind`: it would replace p.kind too.
#define CADRE_LLM_PROVIDER(k)                                                  \
  if (p.kind == #k)                                                            \
    return make_##k##_provider(p);                                             \
  known += known.empty() ? #k : ", " #k;
#include "providers.def"
#undef CADRE_LLM_PROVIDER
  return make_error(errc::invalid_config,
                    "llm.profiles." + p.name + ".kind: unknown provider '"
                      + p.kind + "' (known: " + known + ")");
}

double cost_of(const profile& p, uint64_t input_tokens,
               uint64_t output_tokens) {
  return (static_cast<double>(input_tokens) * p.price_input_per_mtok
          + static_cast<double>(output_tokens) * p.price_output_per_mtok)
         / 1e6;
}

} // namespace cadre::tools::llm
