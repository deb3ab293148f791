#!/usr/bin/env bash
# Installs what the full benchmark (`cargo run --release -p mvvm-bench`)
# needs beyond the MVVM tools, so that every column fills in:
#   1. gcc, for the native builds of the workloads;
#   2. the Wasmtime CLI 48.0.8 (`cargo install wasmtime-cli`: 20-40 min on
#      two cores), for the Wasmtime execution and compile-time columns;
#   3. CRIU 4.1.1 built from Debian trixie's source (bench/criu/build.sh,
#      about a minute, needs root), for the CRIU checkpoint/restore rows.
# Safe to re-run: a step whose result is already there is skipped. Each step
# can be skipped: --skip-gcc, --skip-wasmtime, --skip-criu (or the
# environment variables MVVM_BENCH_SKIP_GCC=1, ..._WASMTIME=1, ..._CRIU=1).
# The test suite does not need any of this (its smoke test checks checksums
# with whatever is installed).
#
# Exit status: 0 when every step that was not skipped succeeded, 1 otherwise
# (the other steps still run).
set -uo pipefail
cd "$(dirname "$0")/.."

WASMTIME_VERSION=${WASMTIME_VERSION:-48.0.8}
skip_gcc=${MVVM_BENCH_SKIP_GCC:-0}
skip_wasmtime=${MVVM_BENCH_SKIP_WASMTIME:-0}
skip_criu=${MVVM_BENCH_SKIP_CRIU:-0}
for arg in "$@"; do
  case $arg in
    --skip-gcc) skip_gcc=1 ;;
    --skip-wasmtime) skip_wasmtime=1 ;;
    --skip-criu) skip_criu=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-setup: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

failed=0
say() { echo "bench-setup: $*"; }

# 1. gcc
if [ "$skip_gcc" = 1 ]; then
  say "gcc: skipped (--skip-gcc)"
elif command -v gcc >/dev/null; then
  say "gcc: present ($(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion))"
elif [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
  say "gcc: MISSING and not root: install gcc and libc6-dev"; failed=1
else
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  say "gcc: installing gcc libc6-dev"
  if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
       $SUDO apt-get install -y -qq --no-install-recommends gcc libc6-dev; then
    say "gcc: installed"
  else
    say "gcc: FAILED to install"; failed=1
  fi
fi

# 2. Wasmtime
if [ "$skip_wasmtime" = 1 ]; then
  say "wasmtime: skipped (--skip-wasmtime)"
elif command -v wasmtime >/dev/null \
     && wasmtime --version 2>/dev/null | grep -q "wasmtime $WASMTIME_VERSION"; then
  say "wasmtime: present ($(command -v wasmtime))"
else
  if command -v wasmtime >/dev/null; then
    say "wasmtime: $(wasmtime --version 2>/dev/null) found, installing $WASMTIME_VERSION over it"
  fi
  log=target/wasmtime-install.log
  mkdir -p target
  say "wasmtime: cargo install wasmtime-cli --locked --version $WASMTIME_VERSION (20-40 min; log: $log)"
  if nice -n 19 cargo install wasmtime-cli --locked --version "$WASMTIME_VERSION" >"$log" 2>&1; then
    say "wasmtime: installed ($(command -v wasmtime || echo "$HOME/.cargo/bin/wasmtime: add it to PATH"))"
  else
    tail -n 5 "$log"
    say "wasmtime: FAILED (see $log)"; failed=1
  fi
fi

# 3. CRIU
if [ "$skip_criu" = 1 ]; then
  say "criu: skipped (--skip-criu)"
elif [ "$(id -u)" != 0 ]; then
  say "criu: skipped (not root: CRIU needs root to dump and restore; the table will say so)"
else
  if criu=$(bench/criu/build.sh); then
    if check=$("$criu" check 2>&1); then
      say "criu: $criu ($("$criu" --version | head -n1)); criu check: $(echo "$check" | tail -n1)"
    else
      say "criu: built $criu, but \`criu check\` fails on this kernel: $(echo "$check" | tail -n1)"
      failed=1
    fi
  else
    say "criu: FAILED to build (see the message above)"; failed=1
  fi
fi

if [ "$failed" = 0 ]; then
  say "done; full run: cargo run --release -p mvvm-bench"
fi
exit "$failed"
