#!/usr/bin/env python3
"""Instructions per operation from the dumps cadre_bench makes under callgrind.

The agent workload dumps the instructions of each measured loop (every
thread's) as its own part, named by the loop (see callgrind_dump in
bench/agent_workload.cpp). This sums each part's own costs (the dump's
`summary:` line also counts calls that were running when the loop started,
so it is not used) and divides by the loop's operations:

  valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
    build/bench/cadre_bench --benchmarks=agent --repeat=1 --agent_turns=200
  bench/callgrind_per_op.py 200 /tmp/cg.out.*
"""

import sys


def own_instructions(path):
    total = 0
    after_calls = False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("calls="):
                after_calls = True  # the next cost line is a call's, inclusive
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            fields = line.split()
            if len(fields) < 2:
                continue
            if after_calls:
                after_calls = False
                continue
            total += int(fields[1])
    return total


def label(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("desc: Trigger:"):
                return line.split(":", 2)[2].strip()
    return "?"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ops = int(sys.argv[1])
    for path in sys.argv[2:]:
        name = label(path)
        if not name.startswith("Client Request"):
            continue
        n = own_instructions(path)
        print("%-40s %12d instructions, %10.0f per operation"
              % (name.replace("Client Request: ", ""), n, n / ops))


if __name__ == "__main__":
    main()
