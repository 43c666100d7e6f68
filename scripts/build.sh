#!/usr/bin/env bash
# Configures and builds cadre into build/ (optimized with debug info,
# warnings as errors). Extra arguments go to cmake --build (e.g. --target).
set -euo pipefail
cd "$(dirname "$0")/.."
# Paths relative to the tree let checkouts of one repository share ccache hits.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja --log-level=WARNING \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCADRE_WERROR=ON
fi
cmake --build build -j "${CADRE_JOBS:-2}" "$@"
