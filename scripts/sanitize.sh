#!/usr/bin/env bash
# Builds cadre with AddressSanitizer + UndefinedBehaviorSanitizer (or the
# sanitizers named in $1, e.g. "thread") into build-<name>/ and runs every
# test; any report fails the run. Further arguments go to ctest (e.g.
# `thread -R persistence`).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizers="${1:-address,undefined}"
shift || true
dir="build-$(echo "$sanitizers" | tr ',' '-')"
jobs="${CADRE_JOBS:-2}"
# Paths relative to the tree let checkouts of one repository share ccache hits.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
bash scripts/setup.sh

# ThreadSanitizer sees only the synchronisation of instrumented code: Debian's
# libcaf_* are not, so every hand-over inside CAF (mailboxes, the scheduler's
# queues) reads as a race. The TSan build therefore builds CAF itself, from
# Debian's source package, with -fsanitize=thread into $dir/caf/.
caf_version=0.17.6
caf_debian=0.17.6-2.1
caf_pool=http://deb.debian.org/debian/pool/main/a/actor-framework
caf_orig="actor-framework_${caf_version}.orig.tar.gz"
caf_orig_sha256=e2bf5bd243f08bb7d8adde197cfe3e6d71314ed3378fe0692f8932f4c3b3928c
caf_debian_tar="actor-framework_${caf_debian}.debian.tar.xz"
caf_debian_sha256=1856ba5307a25a7240f6bea432bda2d405fad7121f2de9c658120574839996cd
caf_cache="${CADRE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cadre}"

fetch_verified() { # name sha256: into $caf_cache, once
  local name="$1" sha="$2" file="$caf_cache/$1"
  if [ ! -f "$file" ]; then
    mkdir -p "$caf_cache"
    echo "sanitize: downloading $caf_pool/$name"
    curl -fsSL --retry 3 -o "$file.part" "$caf_pool/$name" || {
      rm -f "$file.part"
      echo "sanitize: cannot download $caf_pool/$name" >&2
      return 1
    }
    mv "$file.part" "$file"
  fi
  if ! echo "$sha  $file" | sha256sum --check --status; then
    echo "sanitize: $file: sha256 $(sha256sum "$file" | cut -d' ' -f1), expected $sha;" \
         "remove it to download again" >&2
    exit 1
  fi
}

build_tsan_caf() { # $1: the prefix to install into
  local prefix="$1" work="$dir/caf"
  local flags="-std=c++14 -fsanitize=thread -O1 -g -fno-omit-frame-pointer"
  local stamp="$caf_debian $flags"
  if [ -f "$prefix/.cadre-stamp" ] && [ "$(cat "$prefix/.cadre-stamp")" = "$stamp" ]; then
    return 0
  fi
  fetch_verified "$caf_orig" "$caf_orig_sha256"
  rm -rf "$work/src" "$work/build" "$prefix"
  mkdir -p "$work/src"
  tar -xzf "$caf_cache/$caf_orig" -C "$work/src" --strip-components=1
  local patches
  if fetch_verified "$caf_debian_tar" "$caf_debian_sha256"; then
    tar -xJf "$caf_cache/$caf_debian_tar" -C "$work/src"
    patches="$work/src/debian/patches"
  else
    echo "sanitize: applying cadre's copy of the build fixes instead (scripts/caf-patches)" >&2
    patches="$PWD/scripts/caf-patches"
  fi
  while read -r p _; do
    case "$p" in ''|'#'*) continue ;; esac
    patch -d "$work/src" -p1 --quiet --forward < "$patches/$p"
  done < "$patches/series"
  echo "sanitize: building CAF $caf_debian with ThreadSanitizer into $prefix"
  local start=$SECONDS
  # CAF's build reads the standard and flags from CMAKE_CXX_FLAGS; Debian
  # builds it as C++14 (its -std=c++14 patch).
  cmake -S "$work/src" -B "$work/build" -G Ninja --log-level=WARNING \
    -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
    -DCMAKE_CXX_COMPILER_LAUNCHER="$(command -v ccache || true)" \
    -DCMAKE_INSTALL_PREFIX="$PWD/$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DCAF_NO_EXAMPLES=yes -DCAF_NO_TOOLS=yes -DCAF_NO_UNIT_TESTS=yes \
    -DCAF_NO_PYTHON=yes -DCAF_NO_OPENCL=yes -DCAF_NO_SUMMARY=yes \
    -DCAF_NO_COMPILER_CHECK=yes >/dev/null
  nice cmake --build "$work/build" -j "$jobs"
  cmake --install "$work/build" >/dev/null
  echo "$stamp" > "$prefix/.cadre-stamp"
  echo "sanitize: CAF built in $((SECONDS - start)) s"
}

extra=()
if [[ ",$sanitizers," == *,thread,* ]]; then
  caf_prefix="$dir/caf/prefix"
  build_tsan_caf "$caf_prefix"
  extra+=(-DCAF_ROOT="$PWD/$caf_prefix")
fi

if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja --log-level=WARNING -DCMAKE_BUILD_TYPE=Debug \
    -DCADRE_WERROR=ON -DCADRE_BUILD_BENCH=OFF -DCADRE_SANITIZE="$sanitizers" "${extra[@]}"
fi
nice cmake --build "$dir" -j "$jobs"
supp="$PWD/tests/sanitizers"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp"
# TSan writes its reports to files: tests start `cadre serve` processes and
# often keep none of their stderr, yet a report in any of them fails the run.
reports="$PWD/$dir/tsan-reports"
rm -rf "$reports" && mkdir -p "$reports"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:log_path=$reports/report"
cd "$dir"
status=0
nice ctest -j "$jobs" --timeout 1800 --output-on-failure "$@" || status=$?
if [[ ",$sanitizers," == *,thread,* ]] && [ -n "$(ls -A "$reports")" ]; then
  cat "$reports"/*
  echo "sanitize: ThreadSanitizer reports above (from $reports)" >&2
  exit 1
fi
exit "$status"
