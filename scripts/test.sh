#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds everything (warnings are errors)
# and runs every test, the kill -9 recovery test included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j "${CADRE_JOBS:-2}" --timeout 900 "$@"
