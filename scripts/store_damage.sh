#!/usr/bin/env bash
# The store-damage test with many cases (default 200): every command on a
# store damaged at a random offset answers in full or refuses with a
# storage_error. Usage: scripts/store_damage.sh [CASES] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
export CADRE_DAMAGE_CASES="${1:-200}"
if [ -n "${2:-}" ]; then export CADRE_DAMAGE_SEED="$2"; fi
exec build/tests/cadre_integration_tests \
  --gtest_filter='StoreDamageTest.*'
