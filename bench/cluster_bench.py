#!/usr/bin/env python3
"""Cluster benchmarks (bench/README.md, "Cluster"): real `cadre serve`
processes on loopback.

  1. roundtrip: runs `cadre_bench --benchmarks=cluster_roundtrip` against a
     `cadre serve` node offering `echo` and a raw CAF echo peer
     (bench/peers/caf_echo.cpp, with a node's middleman and scheduler
     settings) started here: requests/s and p50 round trip with 64
     requests in flight, side by side in one run; for reference also a
     second raw peer with CAF's default scheduler.
  2. fanout: a map of 10,000 echo tasks submitted to node a, which has
     echo disabled, so every task goes to b or c: tasks/s, the share placed
     remotely and the b/c split (CPU time of each process and their load
     in a's GET /v1/nodes, sampled). Beside it, the same map on one node
     with its own echo pool (b alone, in the same run).
  3. kill: a map of sleep calls over b and c; b is killed with SIGKILL
     while calls run on it; from a's log: kill -> first task_redispatched
     and kill -> first task_completed of a re-dispatched call (the
     re-run's own sleep is reported apart). Median over --kill-runs runs.

  python3 bench/cluster_bench.py [--only roundtrip,fanout,kill]
      [--cadre build/runtime/cadre] [--bench build/bench/cadre_bench]
      [--peer build/bench/caf_echo] [--items 10000] [--repeat 3]
      [--kill-runs 5] [--json bench/results/cluster.json] [--no-build]

(builds cadre, cadre_bench and caf_echo first unless --no-build).

Node clocks are one machine's: event times (time_us, the system clock of
node a) are compared with this script's time.time() at the kill.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ap = argparse.ArgumentParser()
ap.add_argument("--only", default="roundtrip,fanout,kill")
ap.add_argument("--cadre", default=os.path.join(ROOT, "build/runtime/cadre"))
ap.add_argument("--bench", default=os.path.join(ROOT, "build/bench/cadre_bench"))
ap.add_argument("--peer", default=os.path.join(ROOT, "build/bench/caf_echo"))
ap.add_argument("--items", type=int, default=10000)
ap.add_argument("--concurrency", type=int, default=256)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--kill-runs", type=int, default=5)
ap.add_argument("--sleep-ms", type=int, default=1500)
ap.add_argument("--json", default=os.path.join(ROOT, "bench/results/cluster.json"))
ap.add_argument("--no-build", action="store_true")
args = ap.parse_args()
if not args.no_build:
    subprocess.run(["bash", os.path.join(ROOT, "scripts/build.sh"), "--target",
                    "cadre", "cadre_bench", "caf_echo"], check=True,
                   stdout=sys.stderr)
only = set(args.only.split(","))
tmp = tempfile.mkdtemp(prefix="cadre-cluster-bench-")
procs = []


def log(*xs):
    print(*xs, file=sys.stderr, flush=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


class Node:
    """One `cadre serve` with its store, config and cluster listener."""

    def __init__(self, tag, name, seeds="", config=""):
        self.name = name
        self.cluster = "127.0.0.1:%d" % free_port()
        d = os.path.join(tmp, tag, name)
        os.makedirs(d)
        cfg = os.path.join(d, "config.yaml")
        with open(cfg, "w") as f:
            f.write(config)
        cmd = [args.cadre, "--db", os.path.join(d, "db"), "--config", cfg,
               "--log-level", "warn", "serve", "--listen", "127.0.0.1:0",
               "--cluster-listen", self.cluster, "--node-name", name]
        if seeds:
            cmd += ["--join", seeds]
        self.out = open(os.path.join(d, "out"), "w+")
        self.err = open(os.path.join(d, "err"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=self.err)
        procs.append(self.proc)
        self.url = None
        for _ in range(400):
            self.out.seek(0)
            line = self.out.readline()
            if '"listening"' in line:
                self.url = json.loads(line)["url"]
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not self.url:
            raise SystemExit("cluster_bench: node %s did not start: %s"
                             % (name, open(os.path.join(d, "err")).read()))

    def members(self):
        return {m["name"]: m for m in http("GET", self.url + "/v1/nodes")["nodes"]}

    def cpu_s(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_until(ok, what, timeout=30):
    until = time.time() + timeout
    while time.time() < until:
        if ok():
            return
        time.sleep(0.02)
    raise SystemExit("cluster_bench: timed out waiting for " + what)


def cluster(tag, a_config, worker_config):
    a = Node(tag, "a", config=a_config)
    b = Node(tag, "b", a.cluster, worker_config)
    c = Node(tag, "c", a.cluster, worker_config)
    wait_until(lambda: all(a.members().get(n, {}).get("state") == "up"
                           for n in ("b", "c")), "b and c up on a")
    return a, b, c


def submit(node, definition, inp):
    return http("POST", node.url + "/v1/executions",
                {"definition": definition, "input": inp})["id"]


def wait_done(node, xid, timeout=300):
    info = {}

    def done():
        nonlocal info
        info = http("GET", "%s/v1/executions/%s" % (node.url, xid))
        return info.get("status") in ("completed", "failed", "cancelled")
    wait_until(done, "execution " + xid, timeout)
    return info


def events(node, xid):
    out, after = [], 0
    while True:
        page = http("GET", "%s/v1/executions/%s/events?after=%d&limit=1000"
                    % (node.url, xid, after))["events"]
        if not page:
            return out
        out += page
        after = page[-1]["seq"]


def event_at(node, xid, seq):
    return http("GET", "%s/v1/executions/%s/events?after=%d&limit=1"
                % (node.url, xid, seq - 1))["events"][0]


def load1():
    return float(open("/proc/loadavg").read().split()[0])


results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "cpu": next((l.split(":", 1)[1].strip()
                        for l in open("/proc/cpuinfo") if l.startswith("model name")), ""),
           "cores": os.cpu_count(), "load_at_start": open("/proc/loadavg").read().split()[:3]}

# -- 1. round trip ------------------------------------------------------------

if "roundtrip" in only:
    log("roundtrip: cadre node b (echo) and a raw CAF echo peer")
    node = Node("rt", "b")

    def start_peer(tag, *flags):
        out = open(os.path.join(tmp, tag + ".out"), "w+")
        p = subprocess.Popen([args.peer, "127.0.0.1:0", *flags], stdout=out,
                             stderr=subprocess.DEVNULL)
        procs.append(p)
        for _ in range(200):
            out.seek(0)
            line = out.readline()
            if '"listening"' in line:
                return p, "127.0.0.1:%d" % json.loads(line)["port"]
            time.sleep(0.05)
        raise SystemExit("cluster_bench: caf_echo did not start")
    # The peer with a node's settings is the goal's baseline; the one with
    # CAF's default scheduler (idle workers poll) is shown for reference.
    peer, peer_addr = start_peer("peer")
    peer_defaults, peer_defaults_addr = start_peer("peer_defaults",
                                                   "--caf-scheduler")
    out_json = os.path.join(tmp, "roundtrip.json")
    subprocess.run([args.bench, "--benchmarks=cluster_roundtrip",
                    "--repeat=%d" % args.repeat, "--cluster_node=" + node.cluster,
                    "--caf_peer=" + peer_addr,
                    "--caf_peer_defaults=" + peer_defaults_addr,
                    "--json", out_json], check=True)
    results["roundtrip"] = json.load(open(out_json))["results"]["cluster_roundtrip"]
    node.stop()
    for p in (peer, peer_defaults):
        p.terminate()
        p.wait()

# -- 2. fan-out over 3 nodes --------------------------------------------------


def fanout_definition(n):
    return {"name": "fan", "tasks": [{
        "id": "work", "kind": "map", "concurrency": args.concurrency,
        "items": "input.items", "tool": "echo", "input": {"text": "{{ item }}"}}]}


def run_fanout(submit_to, observer, workers):
    inp = {"items": list(range(args.items))}
    cpu0 = {w.name: w.cpu_s() for w in workers}
    samples = {w.name: [] for w in workers}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                for name, m in observer.members().items():
                    if name in samples:
                        samples[name].append(m.get("load", 0))
            except Exception:
                pass
            time.sleep(0.05)
    t = threading.Thread(target=sample)
    t.start()
    xid = submit(submit_to, fanout_definition(args.items), inp)
    info = wait_done(submit_to, xid)
    stop.set()
    t.join()
    first = event_at(submit_to, xid, 1)["time_us"]
    last = event_at(submit_to, xid, info["last_seq"])["time_us"]
    secs = (last - first) / 1e6
    cpu = {w.name: w.cpu_s() - cpu0[w.name] for w in workers}
    return {"status": info["status"], "events": info["last_seq"],
            "seconds": secs, "tasks_per_sec": args.items / secs,
            "worker_cpu_s": cpu,
            "mean_load_seen": {k: (sum(v) / len(v) if v else 0)
                               for k, v in samples.items()}}


if "fanout" in only:
    log("fanout: %d echo tasks, a (echo disabled) -> b, c" % args.items)
    a, b, c = cluster("fan", "tools:\n  echo: {enabled: false}\n", "")
    assert "echo" not in [t["name"] if isinstance(t, dict) else t
                          for t in a.members()["a"].get("tools", [])]
    # Warm-up: connections, pools, allocator.
    run_fanout(a, a, [b, c])
    runs = []
    for r in range(args.repeat):
        x = run_fanout(a, a, [a, b, c])
        log("  cluster run %d: %.0f tasks/s, cpu %s" % (r + 1, x["tasks_per_sec"], x["worker_cpu_s"]))
        runs.append(x)
    # Baseline in the same run: the same map submitted to b, which has
    # its own echo pool (placement keeps every call local).
    local = []
    run_fanout(b, b, [b])
    for r in range(args.repeat):
        x = run_fanout(b, b, [b])
        log("  one node run %d: %.0f tasks/s" % (r + 1, x["tasks_per_sec"]))
        local.append(x)
    for n in (a, b, c):
        n.stop()
    med = sorted(runs, key=lambda x: x["tasks_per_sec"])[len(runs) // 2]
    cb, cc = med["worker_cpu_s"]["b"], med["worker_cpu_s"]["c"]
    results["fanout"] = {
        "items": args.items, "concurrency": args.concurrency,
        "runs": runs, "one_node_runs": local,
        "tasks_per_sec": med["tasks_per_sec"],
        "one_node_tasks_per_sec": statistics.median(x["tasks_per_sec"] for x in local),
        # a has no echo pool: every call is placed on b or c.
        "remote_share": 1.0,
        "cpu_share_b": cb / (cb + cc) if cb + cc else 0,
        "load1_after": load1()}

# -- 3. kill -9 of a worker ---------------------------------------------------

if "kill" in only:
    kills = []
    ms = args.sleep_ms
    definition = {"name": "naps", "tasks": [{
        "id": "nap", "kind": "map", "concurrency": 8, "items": "input.items",
        "tool": "sleep", "input": {"ms": ms}}]}
    worker = "tools:\n  sleep: {workers: 16}\n"
    for r in range(args.kill_runs):
        a, b, c = cluster("kill%d" % r, "tools:\n  sleep: {enabled: false}\n", worker)
        # 8 calls, each node's pool has room for all of them: a re-sent
        # call never waits for a worker.
        xid = submit(a, definition, {"items": list(range(8))})
        wait_until(lambda: a.members()["b"].get("load", 0) > 0, "calls on b", 10)
        t_kill = time.time()
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        info = wait_done(a, xid, 120)
        evs = events(a, xid)
        redis = [e for e in evs if e["type"] == "task_redispatched"]
        lost = {(e["payload"].get("task"), json.dumps(e["payload"].get("item")))
                for e in redis}
        done = [e for e in evs if e["type"] == "task_completed"
                and (e["payload"].get("task"), json.dumps(e["payload"].get("item"))) in lost
                and e["time_us"] >= min(x["time_us"] for x in redis)] if redis else []
        k = {"status": info["status"], "redispatched": len(redis),
             "completed_total": sum(1 for e in evs if e["type"] == "task_completed")}
        if redis and done:
            k["kill_to_redispatched_ms"] = (min(e["time_us"] for e in redis) / 1e6 - t_kill) * 1e3
            k["kill_to_completed_ms"] = (min(e["time_us"] for e in done) / 1e6 - t_kill) * 1e3
            k["minus_sleep_ms"] = k["kill_to_completed_ms"] - ms
        log("  kill run %d: %s" % (r + 1, k))
        kills.append(k)
        for n in (a, c):
            n.stop()
    ok = [k for k in kills if "kill_to_completed_ms" in k]
    results["kill"] = {
        "sleep_ms": ms, "runs": kills,
        "median_kill_to_redispatched_ms": statistics.median(k["kill_to_redispatched_ms"] for k in ok) if ok else None,
        "median_kill_to_completed_ms": statistics.median(k["kill_to_completed_ms"] for k in ok) if ok else None,
        "median_minus_sleep_ms": statistics.median(k["minus_sleep_ms"] for k in ok) if ok else None}

results["load_at_end"] = open("/proc/loadavg").read().split()[:3]
for p in procs:
    if p.poll() is None:
        p.kill()
with open(args.json, "w") as f:
    json.dump(results, f, indent=2)
print(json.dumps({k: v for k, v in results.items() if k not in ("fanout", "kill")}, indent=2))
if "fanout" in results:
    f = results["fanout"]
    print("fanout: %.0f tasks/s over b+c (one node: %.0f), remote share %.0f%%, b's CPU share %.0f%%"
          % (f["tasks_per_sec"], f["one_node_tasks_per_sec"], 100 * f["remote_share"], 100 * f["cpu_share_b"]))
if "kill" in results:
    k = results["kill"]
    print("kill -9: median kill->redispatched %s ms, kill->completed %s ms (sleep %d ms included)"
          % (k["median_kill_to_redispatched_ms"], k["median_kill_to_completed_ms"], k["sleep_ms"]))
