#include "ingress/openapi.hpp"

#include "ingress/openapi_json.hpp" // generated from openapi.json

namespace cadre::runtime {

const std::string& openapi_document() {
  static const std::string doc{embedded::openapi_json};
  return doc;
}

} // namespace cadre::runtime
