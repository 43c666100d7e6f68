#include "cadre/tools/tool.hpp"

namespace cadre::tools {

// Out of line so the vtable has one home: this translation unit.
tool::~tool() = default;

} // namespace cadre::tools
