#include "codec/yaml_json.hpp"

#include <cmath>
#include <cstdlib>
#include <string_view>

#include <yaml-cpp/yaml.h>

namespace cadre::tools::detail {

namespace {

bool number_start(std::string_view s) {
  return !s.empty()
         && (std::string_view{"0123456789+-."}.find(s.front())
             != std::string_view::npos);
}

json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (auto it : node)
        out[it.first.as<std::string>()] = to_json(it.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (auto it : node)
        out.push_back(to_json(it));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const auto& s = node.Scalar();
      if (node.Tag() != "?")
        return s;
      if (s == "true" || s == "True" || s == "TRUE")
        return true;
      if (s == "false" || s == "False" || s == "FALSE")
        return false;
      if (s == "null" || s == "~" || s == "Null" || s == "NULL")
        return nullptr;
      // strtod also reads "nan", "inf" and hex floats, which are strings
      // here.
      if (!number_start(s))
        return s;
      char* end = nullptr;
      auto i = std::strtoll(s.c_str(), &end, 10);
      if (*end == '\0')
        return i;
      auto d = std::strtod(s.c_str(), &end);
      if (*end == '\0' && std::isfinite(d))
        return d;
      return s;
    }
    default:
      return nullptr;
  }
}

} // namespace

expected<json> read_yaml_file(const std::string& path) {
  try {
    return to_json(YAML::LoadFile(path));
  } catch (const YAML::BadFile&) {
    return make_error(errc::invalid_input, "cannot read '" + path + "'");
  } catch (const YAML::Exception& e) {
    return make_error(errc::invalid_input,
                      path + ":" + std::to_string(e.mark.line + 1) + ":"
                        + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

} // namespace cadre::tools::detail
