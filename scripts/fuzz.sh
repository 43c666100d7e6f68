#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang, ASan and UBSan into
# build-fuzz/ and runs each for SECONDS (default 60) from the seed corpora:
# fuzz/corpus/<target>/, the examples and the JSON Schema test suite. Any
# crash, leak, hang (an input over 30 s of wall clock) or out-of-memory
# (over 2 GB) fails the run, leaving the input in build-fuzz/artifacts/.
# Extra arguments name the targets to run (default: all). docs/testing.md
# tells more.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
bash scripts/setup.sh
# clang and libFuzzer are needed here only, not by the normal build.
if ! command -v clang++ >/dev/null \
  || ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz: clang and libclang-rt-dev are missing (run as root to install)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
fi

export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
dir=build-fuzz
if [ ! -f "$dir/build.ninja" ]; then
  # Optimized but with assertions (NDEBUG unset), as a build type of its own.
  CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja --log-level=WARNING \
    -DCMAKE_BUILD_TYPE=Fuzz -DCMAKE_CXX_FLAGS="-O1 -g1 -fno-omit-frame-pointer" \
    -DCADRE_FUZZ=ON -DCADRE_SANITIZE=address,undefined \
    -DCADRE_BUILD_TESTS=OFF -DCADRE_BUILD_BENCH=OFF
fi
cmake --build "$dir" -j "${CADRE_JOBS:-2}" --target fuzzers

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

# Seeds from outside fuzz/corpus: the examples' workflows and inputs, and
# every schema + instance pair of the JSON Schema test suite.
seeds="$dir/seeds"
rm -rf "$seeds" && mkdir -p "$seeds"/{workflow,json,json_schema}
for f in examples/*.yaml examples/*/*.yaml; do
  cp "$f" "$seeds/workflow/$(echo "$f" | tr / _)"
done
cp examples/*.json "$seeds/json/"
suite=/usr/share/json-schema-test-suite/tests
if [ -d "$suite" ]; then
  python3 - "$suite" "$seeds/json_schema" <<'PY'
import json, pathlib, sys
suite, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for f in sorted(suite.glob("draft[467]/*.json")):
    for group in json.loads(f.read_text()):
        for test in group["tests"][:2]:
            n += 1
            (out / f"{n}.json").write_text(json.dumps([group["schema"], test["data"]]))
PY
fi

supp="$PWD/tests/sanitizers"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp"
mkdir -p "$dir/artifacts"
failed=()
for t in "${targets[@]}"; do
  work="$dir/corpus/$t" && mkdir -p "$work"
  extra=() opts=()
  case "$t" in
    # libFuzzer 14's entropic schedule spends some 60% of this target's
    # time on its feature bookkeeping (docs/testing.md, Runs): the classic
    # schedule runs twice the inputs per second on the same harness.
    fuzz_workflow) extra=("$seeds/workflow") opts=(-entropic=0) ;;
    fuzz_json|fuzz_request_body) extra=("$seeds/json") ;;
    fuzz_json_schema) extra=("$seeds/json_schema") ;;
  esac
  [ -d "fuzz/corpus/$t" ] && extra+=("fuzz/corpus/$t")
  log="$dir/$t.log"
  echo "fuzz: $t for ${seconds}s"
  if "$dir/fuzz/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
      "${opts[@]}" -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$dir/artifacts/$t-" \
      "$work" "${extra[@]}" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $t clean, $runs inputs"
  else
    echo "fuzz: $t FAILED (see $log; the input is in $dir/artifacts/)" >&2
    tail -n 40 "$log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
