#!/usr/bin/env python3
"""Per-thread CPU time and switches of node b and of the raw CAF peer over
their own calls of `cluster_roundtrip` (bench/README.md, Cluster, "Where
the time goes"): starts a `cadre serve` node and a `caf_echo` peer, then
for each side runs `cadre_bench --cluster_side=SIDE` and reads
/proc/PID/task/*/stat and status before and after. Threads are named by
what they wait in when idle (wchan), so the middleman's thread (epoll) is
told from CAF's scheduler threads (futex).

  python3 bench/thread_profile.py [--cadre BINARY] [--rounds 2]
      [--ops 100000] [--repeat 3] [--sides raw,cadre]

Per side and round: the median run's requests/s, the side's CPU a call
(its 10% warm-up included) and, per thread that used a clock tick or
waited 50 times, its CPU, voluntary switches (waits) and involuntary ones.

Set CADRE_SCHEDULER_SPIN_POLLS=100 in the environment so spinning
schedulers do not pad the CPU times of either side.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--cadre", default=os.path.join(ROOT, "build/runtime/cadre"))
ap.add_argument("--bench", default=os.path.join(ROOT, "build/bench/cadre_bench"))
ap.add_argument("--peer", default=os.path.join(ROOT, "build/bench/caf_echo"))
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--ops", type=int, default=100000)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--sides", default="raw,cadre")
args = ap.parse_args()
tmp = tempfile.mkdtemp(prefix="cadre-thread-profile-")
TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_line(path, proc):
    for _ in range(400):
        with open(path) as f:
            line = f.readline()
        if '"listening"' in line:
            return json.loads(line)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("thread_profile: %s did not start" % path)


def threads(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            stat = open(base + "stat").read().rsplit(")", 1)[1].split()
            status = dict(l.split(":", 1) for l in open(base + "status")
                          if l.startswith(("voluntary", "nonvoluntary")))
            wchan = open(base + "wchan").read().strip()
            comm = open(base + "comm").read().strip()
        except OSError:
            continue
        out[tid] = {"cpu": (int(stat[11]) + int(stat[12])) / TCK,
                    "vol": int(status["voluntary_ctxt_switches"]),
                    "invol": int(status["nonvoluntary_ctxt_switches"]),
                    "wchan": wchan, "comm": comm}
    return out


d = os.path.join(tmp, "b")
os.makedirs(d)
open(os.path.join(d, "config.yaml"), "w").close()
cluster = "127.0.0.1:%d" % free_port()
node_out = os.path.join(d, "out")
node = subprocess.Popen([args.cadre, "--db", os.path.join(d, "db"), "--config",
                         os.path.join(d, "config.yaml"), "--log-level", "warn",
                         "serve", "--listen", "127.0.0.1:0", "--cluster-listen",
                         cluster, "--node-name", "b"],
                        stdout=open(node_out, "w"), stderr=subprocess.DEVNULL)
wait_line(node_out, node)
peer_out = os.path.join(tmp, "peer.out")
peer = subprocess.Popen([args.peer, "127.0.0.1:0"], stdout=open(peer_out, "w"),
                        stderr=subprocess.DEVNULL)
peer_addr = "127.0.0.1:%d" % wait_line(peer_out, peer)["port"]
pids = {"raw": peer.pid, "cadre": node.pid}
# The warm-up (a tenth of a run) is in every CPU figure.
calls = args.repeat * args.ops + args.ops // 10
try:
    for rnd in range(args.rounds):
        for side in args.sides.split(","):
            pid = pids[side]
            # Idle threads show where they wait: epoll (the middleman) or a
            # futex (scheduler threads, timers).
            before = threads(pid)
            t0 = time.time()
            bench = subprocess.Popen(
                [args.bench, "--benchmarks=cluster_roundtrip",
                 "--repeat=%d" % args.repeat, "--cluster_ops=%d" % args.ops,
                 "--cluster_node=" + cluster, "--caf_peer=" + peer_addr,
                 "--cluster_side=" + side], stdout=subprocess.PIPE, text=True)
            rate = [l.split(":", 1)[1].split("req/s")[0].strip()
                    for l in bench.stdout if "req/s" in l]
            # The requester's own CPU and switches (rusage of the child; its
            # warm-up calls both sides, a tenth of a run each).
            _, status, ru = os.wait4(bench.pid, 0)
            if status != 0:
                raise SystemExit("thread_profile: cadre_bench failed")
            wall = time.time() - t0
            after = threads(pid)
            rows = []
            for tid, a in after.items():
                b = before.get(tid, {"cpu": 0, "vol": 0, "invol": 0})
                rows.append((a["cpu"] - b["cpu"], a["vol"] - b["vol"],
                             a["invol"] - b["invol"], tid,
                             before.get(tid, a)["wchan"], a["comm"]))
            rows.sort(reverse=True)
            tot = sum(r[0] for r in rows)
            print("round %d side %s: %s req/s (median run), %.1f s wall, "
                  "%.2f s CPU (%.2f us a call), load %s; the requester "
                  "%.2f us a call, vol %d invol %d" %
                  (rnd, side, rate[0] if rate else "?", wall, tot,
                   tot * 1e6 / calls, open("/proc/loadavg").read().split()[0],
                   (ru.ru_utime + ru.ru_stime) * 1e6 / calls, ru.ru_nvcsw,
                   ru.ru_nivcsw))
            for cpu, vol, invol, tid, wchan, comm in rows:
                if cpu == 0 and vol < 50:
                    continue
                print("  tid %-7s %-14s %-22s cpu %6.2f s (%5.2f us/call) "
                      "vol %7d invol %6d" % (tid, comm, wchan, cpu,
                                              cpu * 1e6 / calls, vol, invol))
            sys.stdout.flush()
finally:
    node.terminate()
    peer.terminate()
    node.wait()
    peer.wait()
