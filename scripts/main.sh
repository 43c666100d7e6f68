#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds cadre and runs the main job:
# examples/fanout.yaml (a map fan-out, a retried task, a condition) runs until
# it waits durably for a person's approval; the approval is then given with
# `cadre input`, which resumes the execution from its log to completion.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh --target cadre
cadre=./build/runtime/cadre
db=${CADRE_DB:-.cadre}
rc=0
"$cadre" --db "$db" run examples/fanout.yaml \
  --input @examples/fanout.input.json || rc=$?
if [ "$rc" -eq 3 ]; then
  id=$("$cadre" --db "$db" --json executions --status waiting |
    grep -o '"id":"[^"]*"' | head -n 1 | cut -d'"' -f4)
  echo "approving $id"
  "$cadre" --db "$db" input "$id" approve '{"approved": true, "comment": "looks good"}'
  exit $?
fi
exit "$rc"
