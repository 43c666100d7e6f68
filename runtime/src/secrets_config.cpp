#include "secrets_config.hpp"

#include <cstdlib>
#include <fstream>

namespace cadre::runtime {

namespace {

// A credential is short; a larger file is a wrong path, not a secret.
constexpr size_t max_secret_bytes = 64 * 1024;

} // namespace

std::shared_ptr<const tools::secret_store>
load_secrets(const config::node_config& cfg) {
  auto out = std::make_shared<tools::secret_store>();
  for (const auto& [name, src] : cfg.secrets) {
    if (!src.env.empty()) {
      const char* v = std::getenv(src.env.c_str());
      if (v == nullptr || *v == '\0')
        out->add_unavailable(name, "the environment variable " + src.env
                                     + " is not set (secrets." + name
                                     + ".env)");
      else
        out->add(name, v);
      continue;
    }
    std::ifstream in{src.file, std::ios::binary};
    if (!in) {
      out->add_unavailable(name, "cannot read the file " + src.file
                                   + " (secrets." + name + ".file)");
      continue;
    }
    std::string value(max_secret_bytes + 1, '\0');
    in.read(value.data(), static_cast<std::streamsize>(value.size()));
    value.resize(static_cast<size_t>(in.gcount()));
    if (value.size() > max_secret_bytes) {
      out->add_unavailable(name, "the file " + src.file + " is larger than "
                                   + std::to_string(max_secret_bytes)
                                   + " bytes (secrets." + name + ".file)");
      continue;
    }
    // Files written by `echo` or an editor end with a newline.
    if (!value.empty() && value.back() == '\n')
      value.pop_back();
    if (!value.empty() && value.back() == '\r')
      value.pop_back();
    if (value.empty())
      out->add_unavailable(name, "the file " + src.file + " is empty (secrets."
                                   + name + ".file)");
    else
      out->add(name, std::move(value));
  }
  return out;
}

bool secret_defined(const config::node_config& cfg, const std::string& name) {
  return cfg.secrets.count(name) > 0;
}

} // namespace cadre::runtime
