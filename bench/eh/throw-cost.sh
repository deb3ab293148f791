#!/bin/sh
# The cost of one wasm exception in MVVM (see throw_cost.wat): builds the
# THROW and RETURN variants for a few stack depths, compiles them with
# mvvm-aot (release, on PATH or target/release), runs each 5 times
# alternating, and prints the median time per call in both and their
# difference (the cost of a throw over a return through DEPTH frames).
# With a `wasmtime` on PATH (or $WASMTIME), the same modules precompiled
# by `wasmtime compile -W exceptions=y` are timed too, in the same runs.
# Usage: bench/eh/throw-cost.sh [ITERS]   (default 1000000)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PATH="$root/target/release:$PATH"
iters=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v mvvm-aot >/dev/null || { echo "mvvm-aot not found: cargo build --release -p mvvm-cli" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s%N; }
wasmtime=${WASMTIME:-$(command -v wasmtime || true)}
engines="mvvm"
[ -n "$wasmtime" ] && engines="mvvm wasmtime"
run() { # engine mode
  case $1 in
    mvvm) mvvm-checkpoint -t "$work/m$2.aot" ;;
    wasmtime) "$wasmtime" run -W exceptions=y --allow-precompiled "$work/m$2.cwasm" ;;
  esac >/dev/null 2>&1 || true
}
printf '%-9s %-6s %14s %14s %14s\n' engine depth return_ns throw_ns throw_cost_ns
for depth in 1 10 100; do
  for mode in 0 1; do
    sed -e "s/@THROW@/$mode/" -e "s/@DEPTH@/$depth/" -e "s/@ITERS@/$iters/" \
      "$here/throw_cost.wat" > "$work/m$mode.wat"
    mvvm-aot --opt-level=3 -o "$work/m$mode.aot" "$work/m$mode.wat"
    if [ -n "$wasmtime" ]; then
      "$wasmtime" compile -W exceptions=y -o "$work/m$mode.cwasm" "$work/m$mode.wat"
    fi
  done
  for e in $engines; do : > "$work/$e.t0"; : > "$work/$e.t1"; done
  for _ in 1 2 3 4 5; do
    for e in $engines; do
      for mode in 0 1; do
        t0=$(now)
        run "$e" "$mode"
        t1=$(now)
        echo $((t1 - t0)) >> "$work/$e.t$mode"
      done
    done
  done
  for e in $engines; do
    r=$(median < "$work/$e.t0"); t=$(median < "$work/$e.t1")
    awk -v e="$e" -v d="$depth" -v r="$r" -v t="$t" -v n="$iters" \
      'BEGIN { printf "%-9s %-6s %14.1f %14.1f %14.1f\n", e, d, r / n, t / n, (t - r) / n }'
  done
done
