#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds cadre and runs the main job: the
# example workflow with a fan-out, a condition and a retrying task.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh --target cadre
exec ./build/runtime/cadre --db "${CADRE_DB:-.cadre}" run examples/fanout.yaml "$@"
