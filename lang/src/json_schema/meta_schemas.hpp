#pragma once

// The JSON texts of the draft 4, 6 and 7 meta-schemas. Private to lang/.

namespace cadre::tools::detail {

extern const char* const draft4_meta_schema;
extern const char* const draft6_meta_schema;
extern const char* const draft7_meta_schema;

} // namespace cadre::tools::detail
