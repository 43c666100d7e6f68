#!/usr/bin/env bash
# The airflow-monitor example offline, in one command, from the
# repository's root after scripts/build.sh:
#   examples/airflow-monitor/run.sh [DECISION...]
# It starts the test Airflow server (build/tests/cadre_fake_airflow: two
# DAGs with a failed run each), runs the monitor with the scripted models
# until it waits for a person, answers the question of each failed task
# (incident[0]/decide, incident[1]/decide) with the DECISIONs in order (default: clear the
# first failed task, skip the second), prints the summary, and lists the
# clear calls the server received. Everything lives in a temporary
# directory, removed at the end. BUILD=dir picks another build directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${BUILD:-$root/build}"
cadre="$build/runtime/cadre"
server="$build/tests/cadre_fake_airflow"
decisions=('{"decision": "clear", "comment": "upstream fixed, retry"}'
           '{"decision": "skip", "comment": "database maintenance until noon"}')
if [ $# -gt 0 ]; then decisions=("$@"); fi
for exe in "$cadre" "$server"; do
  if [ ! -x "$exe" ]; then
    echo "run.sh: $exe is missing: build first (bash scripts/build.sh)" >&2
    exit 2
  fi
done

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The server prints {"url", "username", "password"} once it listens.
"$server" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do
  [ -s "$work/server.out" ] && break
  sleep 0.1
done
ready="$(head -n 1 "$work/server.out")"
url="$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' <<<"$ready")"
password="$(sed -n 's/.*"password":"\([^"]*\)".*/\1/p' <<<"$ready")"
if [ -z "$url" ]; then
  echo "run.sh: the test Airflow server did not start:" >&2
  cat "$work/server.err" >&2
  exit 1
fi
echo "test Airflow server: $url"

# The example's config, pointed at that server.
sed -e "s#base_url: http://localhost:8080#base_url: $url#" \
    -e "s#workflow: monitor.yaml#workflow: $here/monitor.yaml#" \
    "$here/cadre.yaml" >"$work/cadre.yaml"
export AIRFLOW_PASSWORD="$password"
run=("$cadre" --config "$work/cadre.yaml" --db "$work/db")

# Exit code 3: the execution waits for the person's decisions. Its input
# is not a terminal, so it does not ask inline (docs/airflow-monitor.md).
set +e
"${run[@]}" run "$here/monitor.yaml" --input '{"dag_id": "~"}' </dev/null
code=$?
set -e
if [ "$code" -ne 3 ]; then
  echo "run.sh: expected the monitor to wait for a person (exit 3), got $code" >&2
  exit 1
fi
id="$("${run[@]}" --json executions --status waiting \
      | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -n 1)"
echo
echo "the questions (the human_requested events of cadre events $id):"
"${run[@]}" --json events "$id" | grep '"type":"human_requested"'
# One answer per failed task; the last one lets the execution run to its
# end (exit code 3 until then: it still waits).
i=0
for decision in "${decisions[@]}"; do
  echo
  echo "answering: cadre input $id 'incident[$i]/decide' '$decision'"
  set +e
  "${run[@]}" input "$id" "incident[$i]/decide" "$decision" </dev/null
  code=$?
  set -e
  if [ "$code" -ne 0 ] && [ "$code" -ne 3 ]; then exit "$code"; fi
  i=$((i + 1))
done

kill "$server_pid"
wait "$server_pid" || true
server_pid=""
echo
echo "clear calls the test Airflow server received:"
tail -n +2 "$work/server.out"
