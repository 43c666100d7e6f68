#pragma once

#include <string>

namespace cadre::runtime {

/// The OpenAPI 3.1 document of the HTTP API (runtime/src/ingress/
/// openapi.json, embedded at build time).
const std::string& openapi_document();

} // namespace cadre::runtime
