#!/usr/bin/env bash
# Benchmarks of `cadre serve` on loopback (bench/README.md, "HTTP service"):
#
#   1. GET /healthz: requests/s and latency, cadre serve beside a bare
#      cpp-httplib server (bench/peers/httplib_hello.cpp) in the same run.
#   2. POST /v1/executions of a one-task workflow (echo): executions/s and
#      latency to the 201, 50 connections; beside it the bare server
#      answering the same request with a fixed 201.
#   3. SSE fan-out: 200 streams of one execution (a human task as a gate,
#      then a map of echo calls), opened before its events are produced;
#      events delivered per second over all streams, and the server's RSS
#      per open stream. Beside it the same execution with one stream.
#
# Every round starts fresh servers on new stores; rounds are repeated and
# the medians reported. Before each round the script waits (up to
# --max-wait) while the 1-minute load average is over 1.5, and records it.
#
#   bench/http_bench.sh [--repeat 3] [--duration 20] [--warmup 5]
#                       [--connections 50] [--wrk-threads 2]
#                       [--streams 200] [--items 5000] [--max-wait 900]
#                       [--only healthz,post,sse] [--cadre PATH]
#                       [--no-build] [--json bench/results/http.json]
#
# --cadre runs another build of cadre (e.g. an older commit's, to compare)
# against the same baseline; --only leaves parts out.
#
# Needs wrk (installed with apt-get when missing, which needs root),
# python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
args="$*"

repeat=3
duration=20
warmup=5
connections=50
wrk_threads=2
streams=200
items=5000
max_wait=900
build=1
only=healthz,post,sse
cadre=
json_out=bench/results/http.json
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --items) items=$2; shift 2 ;;
    --max-wait) max_wait=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --cadre) cadre=$(realpath "$2"); shift 2 ;;
    --no-build) build=0; shift ;;
    --json) json_out=$2; shift 2 ;;
    *) echo "http_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# -- tools and build ----------------------------------------------------------

if ! command -v wrk >/dev/null; then
  echo "installing wrk (apt-get)" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "http_bench.sh: wrk is missing and installing it needs root" >&2
    exit 1
  fi
  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
for tool in python3 curl; do
  command -v $tool >/dev/null || { echo "http_bench.sh: $tool is missing" >&2; exit 1; }
done
if [ $build = 1 ]; then
  CADRE_JOBS=${CADRE_JOBS:-1} bash scripts/build.sh --target cadre httplib_hello >&2
fi
cadre=${cadre:-$root/build/runtime/cadre}
hello=$root/build/bench/httplib_hello

# -- servers ------------------------------------------------------------------

tmp=$(mktemp -d /tmp/cadre-http-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background (stdout to $tmp/NAME.out,
# stderr, which has cadre's request log, to $tmp/NAME.err) and waits for
# its {"type":"listening",...} line; sets $url and $pid.
start() {
  local name=$1
  shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 200); do
    if grep -q '"listening"' "$tmp/$name.out" 2>/dev/null; then
      url=$(head -1 "$tmp/$name.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "http_bench.sh: $name did not start:" >&2
  cat "$tmp/$name.err" >&2
  exit 1
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

load1() { cut -d' ' -f1 /proc/loadavg; }
wanted() { [[ ",$only," == *",$1,"* ]]; }

# Waits while the 1-minute load average is over 1.5 (others build on this
# machine), a minute at a time, at most --max-wait seconds.
wait_quiet() {
  local waited=0
  while python3 -c "import sys; sys.exit(0 if float('$(load1)') > 1.5 else 1)"; do
    if [ $waited -ge $max_wait ]; then
      echo "  load $(load1) still over 1.5 after ${waited}s; running anyway" >&2
      return
    fi
    echo "  load $(load1) over 1.5; waiting a minute" >&2
    sleep 60
    waited=$((waited + 60))
  done
}

# -- client scripts -------------------------------------------------------------

# wrk: one JSON line from done(); POST counts every status but 201 (and
# keeps the first 5 of them a thread).
cat >"$tmp/report.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) created = 0; other = 0; statuses = "" end
function done(summary, latency, requests)
  local c, o, st = 0, 0, ""
  for _, t in ipairs(threads) do
    c = c + (t:get("created") or 0); o = o + (t:get("other") or 0)
    st = st .. (t:get("statuses") or "")
  end
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"created":%d,"other":%d,'
    .. '"other_statuses":"%s",'
    .. '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d,'
    .. '"status_over_399":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,'
    .. '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, c, o, st, e.connect, e.read, e.write,
    e.timeout, e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
EOF
{
  cat <<'EOF'
wrk.method = "POST"
wrk.body = '{"workflow":"one","input":{}}'
wrk.headers["Content-Type"] = "application/json"
function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    other = other + 1
    if other <= 5 then statuses = statuses .. status .. " " end
  end
end
EOF
  cat "$tmp/report.lua"
} >"$tmp/post.lua"

# wrk_run OUTFILE URL [wrk args]: the JSON line of done() into OUTFILE,
# plus the machine's CPU time shares during the run from /proc/stat
# (steal: time the hypervisor ran something else on our vCPUs).
wrk_run() {
  local out=$1 url=$2 before after
  shift 2
  before=$(grep '^cpu ' /proc/stat)
  wrk -t"$wrk_threads" -c"$connections" --timeout 10s --latency "$@" "$url" \
    >"$tmp/wrk.txt"
  after=$(grep '^cpu ' /proc/stat)
  grep '^{' "$tmp/wrk.txt" | tail -1 | python3 -c '
import json, sys
x = json.loads(sys.stdin.read())
a, b = ([int(v) for v in s.split()[1:9]] for s in sys.argv[1:3])
d = [q - p for p, q in zip(a, b)]
t = sum(d) or 1
x.update(cpu_idle_pct=100 * d[3] / t, cpu_steal_pct=100 * d[7] / t)
print(json.dumps(x))' "$before" "$after" >"$out"
}

cat >"$tmp/sse_fanout.py" <<'EOF'
# Opens N SSE streams of one execution that waits at its human task `gate`,
# waits until every stream has its stored events, measures the server's
# RSS, answers the gate and counts the events each stream gets until its
# `event: end` (or `event: close`). One JSON line on stdout.
import argparse, asyncio, json, time, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--id", required=True)
ap.add_argument("--streams", type=int, required=True)
ap.add_argument("--pid", type=int, required=True)
a = ap.parse_args()
host, port = a.url.split("//", 1)[1].rsplit(":", 1)
path = f"/v1/executions/{a.id}/events"

def cpu_times():
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:9]]

def status_kb(key):
    with open(f"/proc/{a.pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])

def get(p):
    with urllib.request.urlopen(a.url + p) as r:
        return json.load(r)

class Stream:
    ready = False
    events = 0
    ended = False
    closed = None
    t_end = None

async def follow(st):
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    tail = b""
    while True:
        data = await reader.read(1 << 16)
        if not data:
            break
        buf = tail + data
        # Each persisted event is one chunk "SIZE\r\nid: N\n...": its id
        # line follows a newline. (The last 4 bytes before `data` may start
        # one; 5 would count it twice.)
        n = (tail[-4:] + data).count(b"\nid: ")
        if st.ready:
            st.events += n
        elif b"event: human_requested\n" in buf:
            st.ready = True
        if b"\nevent: end\n" in buf:
            st.ended = True
            break
        if b"\nevent: close\n" in buf:
            st.closed = buf[buf.find(b"\nevent: close\n"):][:160].decode(errors="replace")
            break
        tail = buf[-16:]
    st.t_end = time.monotonic()
    writer.close()

async def main():
    rss_before = status_kb("VmRSS")
    streams = [Stream() for _ in range(a.streams)]
    tasks = [asyncio.create_task(follow(s)) for s in streams]
    t_open = time.monotonic()
    while not all(s.ready for s in streams):
        await asyncio.sleep(0.01)
        if time.monotonic() - t_open > 60:
            raise SystemExit("sse_fanout: streams not ready after 60 s")
    open_s = time.monotonic() - t_open
    await asyncio.sleep(1.0)
    rss_open = status_kb("VmRSS")
    metrics = urllib.request.urlopen(a.url + "/metrics").read().decode()
    open_streams = next((float(l.split()[1]) for l in metrics.splitlines()
                         if l.startswith("cadre_sse_streams ")), None)
    def answer():
        req = urllib.request.Request(
            f"{a.url}/v1/executions/{a.id}/input",
            data=b'{"task": "gate", "value": {}}',
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req) as r:
            return r.status
    cpu0 = cpu_times()
    t0 = time.monotonic()
    status = await asyncio.get_running_loop().run_in_executor(None, answer)
    await asyncio.gather(*tasks)
    d = [q - p for p, q in zip(cpu0, cpu_times())]
    seconds = max(s.t_end for s in streams) - t0
    delivered = sum(s.events for s in streams)
    done = sorted(s.t_end - t0 for s in streams)
    # How long the execution itself took after the answer: its events'
    # own times (the answer is event 3).
    info = get(f"/v1/executions/{a.id}")
    first = get(f"{path}?after=2&limit=1")["events"][0]["time_us"]
    last = get(f"{path}?after={info['last_seq'] - 1}&limit=1")["events"][0]["time_us"]
    print(json.dumps({
        "streams": a.streams, "answer_status": status,
        "execution_status": info["status"], "execution_events": info["last_seq"],
        "execution_seconds": (last - first) / 1e6,
        "events_per_stream_min": min(s.events for s in streams),
        "events_per_stream_max": max(s.events for s in streams),
        "delivered": delivered, "seconds": seconds,
        "events_per_sec": delivered / seconds,
        "ended": sum(s.ended for s in streams),
        "cut_off": sum(1 for s in streams if s.closed),
        "close_sample": next((s.closed for s in streams if s.closed), None),
        "first_stream_done_s": done[0], "median_stream_done_s": done[len(done) // 2],
        "open_seconds": open_s, "cadre_sse_streams": open_streams,
        "rss_before_kb": rss_before, "rss_open_kb": rss_open,
        "rss_per_stream_kb": (rss_open - rss_before) / a.streams,
        "rss_peak_kb": status_kb("VmHWM"), "rss_after_kb": status_kb("VmRSS"),
        "threads": status_kb("Threads"),
        "cpu_idle_pct": 100 * d[3] / (sum(d) or 1),
        "cpu_steal_pct": 100 * d[7] / (sum(d) or 1)}))

asyncio.run(main())
EOF

printf 'name: one\ntasks: [{id: a, tool: echo, input: {text: hi}}]\n' >"$tmp/one.yaml"
cat >"$tmp/fan.yaml" <<'EOF'
name: fan
tasks:
  - id: gate
    kind: human
    prompt: go?
    answer_schema: {type: object}
  - id: work
    depends_on: gate
    kind: map
    concurrency: 50
    items: input.items
    tool: echo
    input: {text: "{{ item }}"}
EOF
python3 -c "import json; print(json.dumps({'workflow': 'fan', 'input': {'items': list(range($items))}}))" \
  >"$tmp/fan.json"
echo '{"workflow": "fan", "input": {"items": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}' \
  >"$tmp/fan_warmup.json"
# Each open stream holds a server thread: 300 > 200 streams.
printf 'server: {threads: 300, sse: {queue: 16384}}\n' >"$tmp/sse.yaml"
printf 'server: {threads: 300}\n' >"$tmp/sse_default_queue.yaml"

put_workflow() { # URL NAME FILE
  curl -sf -X PUT "$1/v1/workflows/$2" -H 'Content-Type: application/yaml' \
    --data-binary @"$3" >/dev/null
}
submit_fan() { # URL [BODY] -> execution id (it waits at `gate`)
  curl -sf -X POST "$1/v1/executions" -H 'Content-Type: application/json' \
    --data-binary @"${2:-$tmp/fan.json}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
answer_gate() { # URL ID
  curl -sf -X POST "$1/v1/executions/$2/input" -H 'Content-Type: application/json' \
    -d '{"task": "gate", "value": {}}' >/dev/null
}
wait_finished() { # URL ID
  for _ in $(seq 1 600); do
    curl -sf "$1/v1/executions/$2" | grep -q '"status":"completed"' && return 0
    sleep 0.05
  done
  echo "http_bench.sh: execution $2 did not finish" >&2
  exit 1
}
# post_checks URL PID FILE: adds the executions by status (every one
# submitted should have completed) and the server's RSS to FILE.
post_checks() {
  curl -sf "$1/metrics" | python3 -c '
import json, re, sys
by = dict(re.findall(r"^cadre_executions\{status=\"(\w+)\"\} (\d+)", sys.stdin.read(), re.M))
x = json.load(open(sys.argv[2]))
x["executions_by_status"] = {k: int(v) for k, v in by.items()}
status = open("/proc/%s/status" % sys.argv[1]).read()
x["rss_kb"] = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
json.dump(x, open(sys.argv[2], "w"))' "$2" "$3"
}
# One line of JSON in $tmp/runs.jsonl per measurement.
record() { # ROUND NAME FILE
  python3 - "$1" "$2" "$3" "$(load1)" >>"$tmp/runs.jsonl" <<'EOF'
import json, sys
rnd, name, path, load = sys.argv[1:5]
x = json.load(open(path))
x.update(round=int(rnd), name=name, load1_after=float(load))
print(json.dumps(x))
EOF
}

# -- the rounds -----------------------------------------------------------------

: >"$tmp/runs.jsonl"
loads_start=()
started=$(date '+%Y-%m-%d %H:%M:%S')
for round in $(seq 1 "$repeat"); do
  echo "round $round of $repeat" >&2
  wait_quiet
  loads_start+=("$(cut -d' ' -f1-3 /proc/loadavg)")
  echo "  load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

  # 1 and 2: GET /healthz and POST /v1/executions, cadre and the bare server
  if wanted healthz || wanted post; then
    start cadre "$cadre" serve --db "$tmp/db$round" --listen 127.0.0.1:0
    cadre_url=$url cadre_pid=$pid
    start hello "$hello" --listen 127.0.0.1:0
    hello_url=$url hello_pid=$pid
    put_workflow "$cadre_url" one "$tmp/one.yaml"
    # The order alternates between rounds.
    if [ $((round % 2)) = 1 ]; then order="hello cadre"; else order="cadre hello"; fi
    for who in $order; do
      wanted healthz || continue
      u=${who}_url
      echo "  GET /healthz, $who" >&2
      wrk_run /dev/null "${!u}/healthz" -d"${warmup}s" -s "$tmp/report.lua"
      wrk_run "$tmp/r.json" "${!u}/healthz" -d"${duration}s" -s "$tmp/report.lua"
      record "$round" "healthz_$who" "$tmp/r.json"
    done
    for who in $order; do
      wanted post || continue
      u=${who}_url
      echo "  POST /v1/executions, $who" >&2
      wrk_run /dev/null "${!u}/v1/executions" -d"${warmup}s" -s "$tmp/post.lua"
      wrk_run "$tmp/r.json" "${!u}/v1/executions" -d"${duration}s" -s "$tmp/post.lua"
      if [ "$who" = cadre ]; then
        # Every execution submitted should have run to completion.
        sleep 1
        post_checks "$cadre_url" "$cadre_pid" "$tmp/r.json"
      fi
      record "$round" "post_$who" "$tmp/r.json"
    done
    stop "$cadre_pid"
    stop "$hello_pid"
  fi

  # 3: SSE fan-out on a new server: a small warm-up execution (10 items,
  # no stream: a big one would leave freed heap that the streams then
  # reuse, hiding their memory), then the measured one with $streams
  # streams, then one with a single stream.
  for variant in sse sse_default_queue; do
    wanted sse || break
    start "$variant" "$cadre" serve --db "$tmp/sse$round$variant" \
      --listen 127.0.0.1:0 --config "$tmp/$variant.yaml"
    put_workflow "$url" fan "$tmp/fan.yaml"
    id=$(submit_fan "$url" "$tmp/fan_warmup.json")
    answer_gate "$url" "$id"
    wait_finished "$url" "$id"
    sleep 1
    echo "  SSE $variant: $streams streams" >&2
    id=$(submit_fan "$url")
    python3 "$tmp/sse_fanout.py" --url "$url" --id "$id" --streams "$streams" \
      --pid "$pid" >"$tmp/r.json"
    record "$round" "${variant}_$streams" "$tmp/r.json"
    if [ $variant = sse ]; then
      echo "  SSE: 1 stream" >&2
      id=$(submit_fan "$url")
      python3 "$tmp/sse_fanout.py" --url "$url" --id "$id" --streams 1 \
        --pid "$pid" >"$tmp/r.json"
      record "$round" "sse_1" "$tmp/r.json"
    fi
    stop "$pid"
  done
done
finished=$(date '+%Y-%m-%d %H:%M:%S')

# -- the summary ------------------------------------------------------------------

python3 - "$tmp/runs.jsonl" "$json_out" "$started" "$finished" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(IFS=';'; echo "${loads_start[*]}")" \
  "$repeat" "$duration" "$warmup" "$connections" "$wrk_threads" "$streams" \
  "$items" "$args" "$cadre" <<'EOF'
import json, platform, statistics, subprocess, sys
(runs_path, out, started, finished, load_end, loads, repeat, duration, warmup,
 conns, wrk_threads, streams, items, args, cadre) = sys.argv[1:16]
runs = [json.loads(l) for l in open(runs_path)]
names = {r["name"] for r in runs}

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

def cpuinfo(key):
    for line in open("/proc/cpuinfo"):
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return "unknown"

def med(name, key):
    xs = [r[key] for r in runs if r["name"] == name and r.get(key) is not None]
    return statistics.median(xs) if xs else None

res = {}
for n in sorted(names):
    rs = [r for r in runs if r["name"] == n]
    if n.startswith(("healthz_", "post_")):
        res[n] = {"per_sec": statistics.median(r["requests"] / (r["duration_us"] / 1e6) for r in rs),
                  **{k: med(n, k) for k in ("p50_us", "p90_us", "p99_us", "p999_us",
                                            "max_us", "mean_us", "requests",
                                            "cpu_steal_pct")},
                  "p99_us_by_round": [r["p99_us"] for r in rs],
                  "cpu_steal_pct_by_round": [round(r.get("cpu_steal_pct", 0), 2) for r in rs],
                  "errors": sum(r["errors_connect"] + r["errors_read"] + r["errors_write"]
                                + r["errors_timeout"] + r["status_over_399"] for r in rs)}
        if n.startswith("post_"):
            res[n]["non_201"] = sum(r["other"] for r in rs)
            res[n]["non_201_share"] = res[n]["non_201"] / max(1, sum(r["requests"] for r in rs))
        if n == "post_cadre":
            res[n]["rss_kb"] = med(n, "rss_kb")
    else:
        res[n] = {k: med(n, k) for k in (
            "events_per_sec", "seconds", "delivered", "execution_seconds",
            "execution_events", "cut_off", "ended", "rss_before_kb", "rss_open_kb",
            "rss_per_stream_kb", "rss_peak_kb", "first_stream_done_s",
            "median_stream_done_s", "open_seconds", "cpu_steal_pct")}
        res[n]["rss_per_stream_kb_by_round"] = [r["rss_per_stream_kb"] for r in rs]

goals, lines = [], []
def ms(us):
    return f"{us / 1000:.2f} ms"
if "healthz_cadre" in res:
    h, b = res["healthz_cadre"], res["healthz_hello"]
    r1, r2 = b["per_sec"] / h["per_sec"], h["p99_us"] / b["p99_us"]
    goals += [("GET /healthz requests/s within 1.5x of bare cpp-httplib", r1 <= 1.5, f"{r1:.2f}x"),
              ("GET /healthz p99 within 1.5x of bare cpp-httplib", r2 <= 1.5, f"{r2:.2f}x")]
    lines += [("GET /healthz requests/s", f"{h['per_sec']:,.0f}", f"{b['per_sec']:,.0f}", f"{r1:.2f}x"),
              ("GET /healthz p50 / p99", f"{ms(h['p50_us'])} / {ms(h['p99_us'])}",
               f"{ms(b['p50_us'])} / {ms(b['p99_us'])}", f"{r2:.2f}x"),
              ("  p99 by round, ms", " ".join(f"{x / 1000:.1f}" for x in h["p99_us_by_round"]),
               " ".join(f"{x / 1000:.1f}" for x in b["p99_us_by_round"]), ""),
              ("  CPU steal by round, %", " ".join(f"{x:.1f}" for x in h["cpu_steal_pct_by_round"]),
               " ".join(f"{x:.1f}" for x in b["cpu_steal_pct_by_round"]), "")]
if "post_cadre" in res:
    p, b = res["post_cadre"], res["post_hello"]
    goals += [(f"POST /v1/executions p99 < 20 ms at {conns} connections", p["p99_us"] < 20000,
               f"{p['p99_us'] / 1000:.1f} ms"),
              ("POST /v1/executions >= 5,000 executions/s", p["per_sec"] >= 5000,
               f"{p['per_sec']:,.0f}/s")]
    lines += [("POST /v1/executions per s", f"{p['per_sec']:,.0f}", f"{b['per_sec']:,.0f}",
               f"{b['per_sec'] / p['per_sec']:.2f}x"),
              ("POST p50 / p99 to 201", f"{ms(p['p50_us'])} / {ms(p['p99_us'])}",
               f"{ms(b['p50_us'])} / {ms(b['p99_us'])}", ""),
              ("  p99 by round, ms", " ".join(f"{x / 1000:.1f}" for x in p["p99_us_by_round"]),
               " ".join(f"{x / 1000:.1f}" for x in b["p99_us_by_round"]), ""),
              ("POST non-201", f"{p['non_201']} ({p['non_201_share']:.3%})", f"{b['non_201']}", "")]
sse = f"sse_{streams}"
if sse in res:
    s, s1, sd = res[sse], res["sse_1"], res[f"sse_default_queue_{streams}"]
    lines += [(f"SSE events/s, {streams} streams vs 1", f"{s['events_per_sec']:,.0f}",
               f"{s1['events_per_sec']:,.0f}", f"{s['events_per_sec'] / s1['events_per_sec']:.1f}x"),
              ("SSE delivery / execution seconds", f"{s['seconds']:.2f} / {s['execution_seconds']:.2f}",
               f"{s1['seconds']:.2f} / {s1['execution_seconds']:.2f}", ""),
              ("SSE RSS per open stream", f"{s['rss_per_stream_kb']:.1f} KiB",
               "by round " + " ".join(f"{x:.1f}" for x in s["rss_per_stream_kb_by_round"]), ""),
              ("SSE peak RSS", f"{s['rss_peak_kb'] / 1024:.0f} MiB", "", ""),
              ("SSE streams cut off", f"{s['cut_off']:.0f}", "", ""),
              ("  ... with sse.queue 1024 (default)", f"{sd['cut_off']:.0f}", "", "")]

header = {
    "date": started, "finished": finished,
    "cpu": cpuinfo("model name"), "cores": int(sh("nproc") or 0),
    "memory": sh("free -g | awk '/Mem:/{print $2}'") + " GiB",
    "kernel": platform.release(),
    "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
    "compiler": sh("c++ --version | head -1"),
    "cadre": cadre,
    "cpp_httplib": sh("dpkg-query -W -f='${Version}' libcpp-httplib0.11"),
    "wrk": sh("dpkg-query -W -f='${Version}' wrk"),
    "python": platform.python_version(),
    "load_at_round_start": loads.split(";"), "load_at_end": load_end,
}
doc = {
    "command": ("bench/http_bench.sh " + args).strip(),
    "settings": {"repeat": int(repeat), "duration_s": int(duration),
                 "warmup_s": int(warmup), "connections": int(conns),
                 "wrk_threads": int(wrk_threads), "sse_streams": int(streams),
                 "sse_map_items": int(items),
                 "sse_config": "server: {threads: 300, sse: {queue: 16384}}",
                 "sse_default_queue_config": "server: {threads: 300}"},
    "header": header,
    "goals": [("MET     " if ok else "MISSED  ") + f"{g}: {v}" for g, ok, v in goals],
    "medians": res,
    "runs": runs,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=2, sort_keys=True)
    f.write("\n")

print(f"cadre serve on loopback, {header['cpu']} ({header['cores']} cores), "
      f"median of {repeat} rounds; wrk -t{wrk_threads} -c{conns} -d{duration}s")
print(f"load at round start: {', '.join(header['load_at_round_start'])}; at end {load_end}")
print()
print(f"{'':38} {'cadre':>24} {'baseline':>22} {'ratio':>6}")
for name, a, b, r in lines:
    print(f"{name:38} {a:>24} {b:>22} {r:>6}")
print()
for g in doc["goals"]:
    print(g)
print(f"\nwrote {out}")
EOF
