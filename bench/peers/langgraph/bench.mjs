#!/usr/bin/env node
// LangGraph.js peer benchmark for cadre.
//
// Workloads (every node is a no-op that adds 1 to a `count` channel whose
// reducer is addition, so the final count proves every node ran exactly once):
//   chain_N   START -> n0 -> n1 -> ... -> n{N-1} -> END   (N sequential supersteps)
//   fanout_N  START -> start -> N parallel workers -> join -> END
//
// Fan-out style: by default the Send API (a conditional edge out of `start`
// returns N `Send("worker", {...})` packets; one `worker` node runs N times in a
// single superstep; `worker -> join` is a static edge, so `join` runs once in
// the next superstep after all of them). That is LangGraph's documented,
// idiomatic map-reduce pattern for a wide or data-dependent fan-out.
// `--fanout-style static` builds N distinct nodes w0..w{N-1} with static edges
// start -> w_i and a barrier edge [w0..w{N-1}] -> join instead, for comparison.
//
// Checkpointers: "none" (no checkpointer) and "sqlite" (SqliteSaver from
// @langchain/langgraph-checkpoint-sqlite on a fresh temp-file DB for each run,
// invoked with durability "sync" by default: each superstep's checkpoint is
// written before the next superstep starts). SqliteSaver opens the DB in WAL
// mode; better-sqlite3 is compiled with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1
// (synchronous=NORMAL: commits survive a process crash, fsync only at WAL
// checkpoints). `--sqlite-sync full` sets PRAGMA synchronous=FULL (fsync on
// every commit) instead.
//
// Timing: graph construction + compile is timed once (build_seconds, not part
// of `seconds`). Then one untimed warm-up invoke, then --repeat K timed invokes;
// `seconds` is the MEDIAN of the K runs (all runs are in `runs_seconds`, best
// in `best_seconds`). For sqlite, DB creation + table setup happens before the
// timer starts; the DB file is deleted after each run.
// steps_per_sec = N / seconds, where N counts only the N no-op nodes (the
// fan-out's `start` and `join` nodes are not counted).
//
// Flags:
//   --chain N            chain length (default 1000; 0 skips the chain)
//   --chain-sqlite N     chain length for the sqlite case (default = --chain)
//   --fanout N           fan-out width (default 1000; 0 skips the fan-out)
//   --fanout-sqlite N    fan-out width for the sqlite case (default = --fanout)
//   --fanout-style S     send (default) | static
//   --repeat K           timed runs per case (default 3)
//   --durability D       sync (default) | async | exit  (sqlite case only)
//   --sqlite-sync S      default (library default: NORMAL in WAL) | normal | full
//   --only C             none | sqlite   (run only that checkpointer)
//
// Prints exactly one JSON object on stdout; progress goes to stderr.

import { StateGraph, Annotation, Send, START, END } from "@langchain/langgraph";
import { SqliteSaver } from "@langchain/langgraph-checkpoint-sqlite";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setMaxListeners } from "node:events";
import os from "node:os";

const require = createRequire(import.meta.url);

// LangGraph adds one abort listener per concurrent task to the run's
// AbortSignal; silence Node's MaxListenersExceededWarning for wide fan-outs.
setMaxListeners(0);

function parseArgs(argv) {
  const opts = {
    chain: 1000,
    chainSqlite: undefined,
    fanout: 1000,
    fanoutSqlite: undefined,
    fanoutStyle: "send",
    repeat: 3,
    durability: "sync",
    sqliteSync: "default",
    only: undefined,
  };
  const intFlag = (name, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} needs a non-negative integer, got ${v}`);
    return n;
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--chain": opts.chain = intFlag(a, next()); break;
      case "--chain-sqlite": opts.chainSqlite = intFlag(a, next()); break;
      case "--fanout": opts.fanout = intFlag(a, next()); break;
      case "--fanout-sqlite": opts.fanoutSqlite = intFlag(a, next()); break;
      case "--fanout-style": opts.fanoutStyle = next(); break;
      case "--repeat": opts.repeat = intFlag(a, next()); break;
      case "--durability": opts.durability = next(); break;
      case "--sqlite-sync": opts.sqliteSync = next(); break;
      case "--only": opts.only = next(); break;
      case "-h":
      case "--help":
        process.stderr.write(
          "usage: node bench.mjs [--chain N] [--chain-sqlite N] [--fanout N] [--fanout-sqlite N]\n" +
          "                      [--fanout-style send|static] [--repeat K] [--durability sync|async|exit]\n" +
          "                      [--sqlite-sync default|normal|full] [--only none|sqlite]\n");
        process.exit(0);
      default:
        throw new Error(`unknown flag ${a}`);
    }
  }
  if (opts.repeat < 1) throw new Error("--repeat must be >= 1");
  if (!["send", "static"].includes(opts.fanoutStyle)) throw new Error("--fanout-style must be send or static");
  if (!["sync", "async", "exit"].includes(opts.durability)) throw new Error("--durability must be sync, async or exit");
  if (!["default", "normal", "full"].includes(opts.sqliteSync)) throw new Error("--sqlite-sync must be default, normal or full");
  if (opts.only !== undefined && !["none", "sqlite"].includes(opts.only)) throw new Error("--only must be none or sqlite");
  if (opts.chainSqlite === undefined) opts.chainSqlite = opts.chain;
  if (opts.fanoutSqlite === undefined) opts.fanoutSqlite = opts.fanout;
  return opts;
}

const State = Annotation.Root({
  count: Annotation({ reducer: (a, b) => a + b, default: () => 0 }),
});

const noop = () => ({ count: 1 });

function buildChain(n) {
  const g = new StateGraph(State);
  for (let i = 0; i < n; i++) g.addNode(`n${i}`, noop);
  g.addEdge(START, "n0");
  for (let i = 1; i < n; i++) g.addEdge(`n${i - 1}`, `n${i}`);
  g.addEdge(`n${n - 1}`, END);
  return g;
}

function buildFanoutSend(n) {
  const g = new StateGraph(State);
  g.addNode("start", () => ({}));
  g.addNode("worker", noop);
  g.addNode("join", () => ({}));
  g.addEdge(START, "start");
  g.addConditionalEdges("start", () => {
    const sends = new Array(n);
    for (let i = 0; i < n; i++) sends[i] = new Send("worker", { count: 0 });
    return sends;
  }, ["worker"]);
  g.addEdge("worker", "join");
  g.addEdge("join", END);
  return g;
}

function buildFanoutStatic(n) {
  const g = new StateGraph(State);
  g.addNode("start", () => ({}));
  const names = [];
  for (let i = 0; i < n; i++) {
    names.push(`w${i}`);
    g.addNode(`w${i}`, noop);
  }
  g.addNode("join", () => ({}));
  g.addEdge(START, "start");
  for (const w of names) g.addEdge("start", w);
  g.addEdge(names, "join"); // barrier: join waits for every w_i
  g.addEdge("join", END);
  return g;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const round = (x, d = 6) => Number(x.toFixed(d));

async function runCase({ workload, n, build, checkpointer, opts, tmpRoot }) {
  const t0 = performance.now();
  const graph = build(n);
  // A SqliteSaver instance is bound to one DB, but compile() only keeps a
  // reference, so compile once with a placeholder and swap per run below.
  const compiledPlain = graph.compile();
  const buildSeconds = (performance.now() - t0) / 1000;

  let runIdx = 0;
  const oneRun = async () => {
    const id = runIdx++;
    let compiled = compiledPlain;
    let saver, dbPath;
    const config = { recursionLimit: n + 10 };
    if (checkpointer === "sqlite") {
      dbPath = join(tmpRoot, `${workload}-${id}.sqlite`);
      saver = SqliteSaver.fromConnString(dbPath);
      saver.setup();
      if (opts.sqliteSync !== "default") saver.db.pragma(`synchronous=${opts.sqliteSync.toUpperCase()}`);
      compiled = graph.compile({ checkpointer: saver });
      config.configurable = { thread_id: `bench-${workload}-${id}` };
      config.durability = opts.durability;
    }
    const start = performance.now();
    const out = await compiled.invoke({ count: 0 }, config);
    const secs = (performance.now() - start) / 1000;
    if (out.count !== n) throw new Error(`${workload}/${checkpointer}: expected count ${n}, got ${out.count}`);
    let checkpoints;
    if (saver) {
      checkpoints = saver.db.prepare("SELECT COUNT(*) AS c FROM checkpoints").get().c;
      saver.db.close();
      for (const suf of ["", "-wal", "-shm"]) rmSync(dbPath + suf, { force: true });
    }
    return { secs, checkpoints };
  };

  process.stderr.write(`[langgraph] ${workload} checkpointer=${checkpointer}: build ${buildSeconds.toFixed(3)}s, warm-up...`);
  await oneRun(); // warm-up (also JIT-warms the compile path for sqlite)
  const runs = [];
  let checkpoints;
  for (let k = 0; k < opts.repeat; k++) {
    const r = await oneRun();
    runs.push(r.secs);
    checkpoints = r.checkpoints;
    process.stderr.write(` ${r.secs.toFixed(3)}s`);
  }
  process.stderr.write("\n");
  const seconds = median(runs);
  const res = {
    workload,
    checkpointer,
    n,
    seconds: round(seconds),
    steps_per_sec: round(n / seconds, 1),
    best_seconds: round(Math.min(...runs)),
    runs_seconds: runs.map((x) => round(x)),
    build_seconds: round(buildSeconds),
  };
  if (checkpointer === "sqlite") {
    res.durability = opts.durability;
    res.sqlite_synchronous = opts.sqliteSync === "default" ? "NORMAL (WAL, library default)" : opts.sqliteSync.toUpperCase();
    res.checkpoints_written = checkpoints;
  }
  return res;
}

async function main() {
  const opts = parseArgs(process.argv);
  const tmpRoot = mkdtempSync(join(tmpdir(), "cadre-langgraph-bench-"));
  const results = [];
  const fanoutBuild = opts.fanoutStyle === "send" ? buildFanoutSend : buildFanoutStatic;
  const cps = opts.only ? [opts.only] : ["none", "sqlite"];
  const wallStart = performance.now();
  try {
    for (const cp of cps) {
      const n = cp === "sqlite" ? opts.chainSqlite : opts.chain;
      if (n > 0) results.push(await runCase({ workload: `chain_${n}`, n, build: buildChain, checkpointer: cp, opts, tmpRoot }));
    }
    for (const cp of cps) {
      const n = cp === "sqlite" ? opts.fanoutSqlite : opts.fanout;
      if (n > 0) results.push(await runCase({ workload: `fanout_${n}`, n, build: fanoutBuild, checkpointer: cp, opts, tmpRoot }));
    }
  } finally {
    rmSync(tmpRoot, { recursive: true, force: true });
  }
  const version = require("@langchain/langgraph/package.json").version;
  const out = {
    peer: "langgraph.js",
    version,
    versions: {
      "@langchain/langgraph": version,
      "@langchain/core": require("@langchain/core/package.json").version,
      "@langchain/langgraph-checkpoint-sqlite": require("@langchain/langgraph-checkpoint-sqlite/package.json").version,
      "better-sqlite3": require("better-sqlite3/package.json").version,
      node: process.versions.node,
    },
    method: `median of ${opts.repeat} timed invokes after 1 warm-up; steps = N no-op nodes`,
    fanout_style: opts.fanoutStyle === "send" ? "Send API (one worker node x N Sends)" : "static edges (N distinct nodes + barrier join)",
    machine: { cpus: os.cpus().length, platform: `${os.platform()} ${os.arch()}` },
    date: new Date().toISOString(),
    total_wall_seconds: round((performance.now() - wallStart) / 1000, 2),
    results,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
