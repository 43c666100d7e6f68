#include "ingress/openapi.hpp"

namespace cadre::runtime {

const std::string& openapi_document() {
  static const std::string doc =
#include "openapi_json.inc"
    ;
  return doc;
}

} // namespace cadre::runtime
