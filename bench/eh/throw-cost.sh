#!/bin/sh
# The cost of one wasm exception in MVVM (see throw_cost.wat): builds the
# THROW and RETURN variants for a few stack depths, compiles them with
# mvvm-aot (release, on PATH or target/release), runs each 5 times
# alternating, and prints the median time per call in both and their
# difference (the cost of a throw over a return through DEPTH frames).
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
printf '%-6s %14s %14s %14s\n' depth return_ns throw_ns throw_cost_ns
for depth in 1 10 100; do
  for mode in 0 1; do
    sed -e "s/@THROW@/$mode/" -e "s/@DEPTH@/$depth/" -e "s/@ITERS@/$iters/" \
      "$here/throw_cost.wat" > "$work/m$mode.wat"
    mvvm-aot --opt-level=3 -o "$work/m$mode.aot" "$work/m$mode.wat"
  done
  : > "$work/t0"; : > "$work/t1"
  for _ in 1 2 3 4 5; do
    for mode in 0 1; do
      t0=$(now)
      mvvm-checkpoint -t "$work/m$mode.aot" >/dev/null 2>&1 || true
      t1=$(now)
      echo $((t1 - t0)) >> "$work/t$mode"
    done
  done
  r=$(median < "$work/t0"); t=$(median < "$work/t1")
  awk -v d="$depth" -v r="$r" -v t="$t" -v n="$iters" \
    'BEGIN { printf "%-6s %14.1f %14.1f %14.1f\n", d, r / n, t / n, (t - r) / n }'
done
