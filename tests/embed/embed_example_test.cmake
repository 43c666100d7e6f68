# Installs cadre's `messages` component into a fresh prefix, builds
# examples/embed against that prefix alone (find_package(cadre)) and runs it.
# Run by ctest (tests/CMakeLists.txt) with -D for each variable below.
#   CADRE_BINARY_DIR  the build tree to install from
#   SOURCE_DIR        examples/embed
#   WORK_DIR          scratch directory, emptied first
#   GENERATOR         CMake generator for the example
#   LAUNCHER          compiler launcher (ccache) or empty
#   SANITIZE          the build's CADRE_SANITIZE, or empty
#   CAF_ROOT          the CAF the build used when not the system's (the
#                     TSan build's own, scripts/sanitize.sh), or empty
#   NETWORK_CHECK     runs the example against a `cadre serve` it starts
#                     (embed_network_check.cpp)
cmake_minimum_required(VERSION 3.22)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run("install" ${CMAKE_COMMAND} --install ${CADRE_BINARY_DIR}
    --prefix ${prefix} --component messages)

# Only the messages component: no other cadre library lands in the prefix.
file(GLOB_RECURSE installed_libs RELATIVE ${prefix} ${prefix}/*.a ${prefix}/*.so)
if(NOT installed_libs MATCHES "libcadre_messages.a"
   OR installed_libs MATCHES "cadre_(tools|actors|runtime|persistence)")
  message(FATAL_ERROR "unexpected libraries installed: ${installed_libs}")
endif()

# cadre's headers stay free of warnings in an embedder's C++17 build.
set(cxx_flags "-Werror")
set(link_flags "")
if(SANITIZE)
  # An instrumented library needs the sanitizer's runtime in the program.
  string(APPEND cxx_flags " -fsanitize=${SANITIZE}")
  set(link_flags "-fsanitize=${SANITIZE}")
endif()
set(flags "-DCMAKE_CXX_FLAGS=${cxx_flags}"
          "-DCMAKE_EXE_LINKER_FLAGS=${link_flags}")
if(CAF_ROOT)
  list(APPEND flags "-DCAF_ROOT=${CAF_ROOT}")
endif()
run("configure examples/embed" ${CMAKE_COMMAND} -S ${SOURCE_DIR}
    -B ${WORK_DIR}/build -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER}
    ${flags})
run("build examples/embed" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run("cadre_embed" ${WORK_DIR}/build/cadre_embed)

foreach(expected
    "cadre type IDs: [1200, "
    "cadre::first_free_type_id: 2200"
    "embed_example type IDs: [2200, 2201)"
    "submit_request as JSON: {\"definition\":{\"name\":\"greeting\""
    "\"input\":{\"name\":\"Ada\"}"
    "both type blocks in one message: ok")
  string(FIND "${run_output}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "cadre_embed did not print '${expected}':\n${run_output}")
  endif()
endforeach()

# Against a node: the check starts `cadre serve` with a cluster listener,
# runs the example with its address and checks what it printed.
set(ENV{CADRE_EMBED_EXE} ${WORK_DIR}/build/cadre_embed)
run("cadre_embed against a node" ${NETWORK_CHECK})
message(STATUS "${run_output}")

# The pkg-config file points into the same prefix.
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  file(GLOB_RECURSE pc_file ${prefix}/*/cadre-messages.pc)
  get_filename_component(pc_dir "${pc_file}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
  run("pkg-config" ${PKG_CONFIG} --libs --cflags cadre-messages)
  string(FIND "${run_output}" "-lcadre_messages" at)
  if(at EQUAL -1 OR NOT run_output MATCHES "-I[^ ]*/include")
    message(FATAL_ERROR "pkg-config cadre-messages: ${run_output}")
  endif()
  string(REGEX MATCH "-L([^ ]+)" libdir_flag "${run_output}")
  if(NOT EXISTS "${CMAKE_MATCH_1}/libcadre_messages.a")
    message(FATAL_ERROR "pkg-config's libdir lacks the library: ${run_output}")
  endif()
endif()
message(STATUS "examples/embed built against the installed package and ran")
