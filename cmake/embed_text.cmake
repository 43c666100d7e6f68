# cmake -DINPUT=file -DOUTPUT=header -DNAME=identifier -P embed_text.cmake
# Writes OUTPUT, a header defining the text of INPUT as
# `inline constexpr std::string_view cadre::embedded::NAME`, so a text kept
# in its own file (lang/src/lua/stdlib.lua) is part of the binary. The
# header is replaced only when its text changes.
foreach(v INPUT OUTPUT NAME)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "embed_text.cmake: ${v} is not set")
  endif()
endforeach()
file(READ "${INPUT}" text)
set(delimiter "cadre_embed")
string(FIND "${text}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains )${delimiter}\", which would end "
                      "the raw string it is embedded in")
endif()
# The file's name only: the header is the same in every checkout (ccache).
get_filename_component(source "${INPUT}" NAME)
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${source} by cmake/embed_text.cmake: edit that file.\n"
  "#pragma once\n\n#include <string_view>\n\nnamespace cadre::embedded {\n\n"
  "inline constexpr std::string_view ${NAME} = R\"${delimiter}(${text})${delimiter}\";\n\n"
  "} // namespace cadre::embedded\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different
                "${OUTPUT}.tmp" "${OUTPUT}")
file(REMOVE "${OUTPUT}.tmp")
