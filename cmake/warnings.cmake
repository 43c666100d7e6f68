# Warning flags for cadre's own targets, the sanitizer switch, and the
# functions that make a module (cadre_module) and embed a text file in one
# (cadre_embed_text).
add_library(cadre_warnings INTERFACE)
target_compile_options(cadre_warnings INTERFACE -Wall -Wextra -Wpedantic
  -Wno-missing-field-initializers)
if(CADRE_WERROR)
  target_compile_options(cadre_warnings INTERFACE -Werror)
endif()
if(CADRE_SANITIZE)
  add_compile_options(-fsanitize=${CADRE_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${CADRE_SANITIZE})
endif()

# cadre_module(NAME SOURCES... DEPS ... PRIVATE_DEPS ...)
function(cadre_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(cadre_${name} STATIC ${M_SOURCES})
  add_library(cadre::${name} ALIAS cadre_${name})
  # Build-tree paths and the warning flags stay out of an installed target
  # (messages/CMakeLists.txt installs cadre_messages).
  target_include_directories(cadre_${name}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(cadre_${name} PUBLIC ${M_DEPS}
    PRIVATE ${M_PRIVATE_DEPS} $<BUILD_INTERFACE:cadre_warnings>)
endfunction()

# cadre_embed_text(TARGET INPUT NAME HEADER): HEADER (a path below the
# target's generated/ include directory), made at build time from the text
# file INPUT by embed_text.cmake, defines cadre::embedded::NAME.
function(cadre_embed_text target input name header)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/generated/${header})
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${CMAKE_CURRENT_SOURCE_DIR}/${input}
            -DOUTPUT=${out} -DNAME=${name}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_text.cmake
    DEPENDS ${input} ${PROJECT_SOURCE_DIR}/cmake/embed_text.cmake
    COMMENT "Embedding ${input}")
  target_sources(${target} PRIVATE ${out})
  target_include_directories(${target} PRIVATE
                             ${CMAKE_CURRENT_BINARY_DIR}/generated)
endfunction()
