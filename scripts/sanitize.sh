#!/usr/bin/env bash
# Builds cadre with AddressSanitizer + UndefinedBehaviorSanitizer (or the
# sanitizers named in $1, e.g. "thread") into build-<name>/ and runs every
# test; any report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizers="${1:-address,undefined}"
dir="build-$(echo "$sanitizers" | tr ',' '-')"
# Paths relative to the tree let checkouts of one repository share ccache hits.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
bash scripts/setup.sh
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja --log-level=WARNING -DCMAKE_BUILD_TYPE=Debug \
    -DCADRE_WERROR=ON -DCADRE_BUILD_BENCH=OFF -DCADRE_SANITIZE="$sanitizers"
fi
cmake --build "$dir" -j "${CADRE_JOBS:-2}"
supp="$PWD/tests/sanitizers"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
cd "$dir"
ctest -j "${CADRE_JOBS:-2}" --timeout 1800 --output-on-failure
