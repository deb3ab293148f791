#!/usr/bin/env bash
# Snapshot durability modes against dd on the same disk: the time from a
# checkpoint's trigger to the snapshot being reported written, for
# `--sync=full|data|none`, beside `dd` writing as many bytes with
# `conv=fsync`, `conv=fdatasync` and no sync. Median of N runs each.
#
#   bench/sync/measure.sh [MIB (default 256)] [RUNS (default 5)] [DIR (default: a temp dir under $TMPDIR)]
#
# Uses the release tools (cargo build --release -p mvvm-cli, or MVVM_BIN=DIR) and
# bench/wasm/memfill.wasm (-m MIB fills that much memory, -p passes).
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-256}
runs=${2:-5}
if [ -n "${3:-}" ]; then
  dir=$3
  mkdir -p "$dir"
  cleanup=(rm -f "$dir/memfill.aot" "$dir/s.snap" "$dir/s.json" "$dir/dd.out")
else
  dir=$(mktemp -d)
  cleanup=(rm -rf "$dir")
fi
bin=${MVVM_BIN:-target/release}
[ -x $bin/mvvm-checkpoint ] || cargo build --release -q -p mvvm-cli
$bin/mvvm-aot --enable-loop-checkpoint -o "$dir/memfill.aot" bench/wasm/memfill.wasm
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
for mode in full data none; do
  ms=$(for _ in $(seq "$runs"); do
    rm -f "$dir/s.snap"
    $bin/mvvm-checkpoint -t "$dir/memfill.aot" -a "-m$mib,-p1000" --after 1 \
      --sync "$mode" --snapshot "$dir/s.snap" --json "$dir/s.json" >/dev/null 2>&1 || true
    grep -o '"checkpoint_ms":[0-9.]*' "$dir/s.json" | cut -d: -f2
  done | median)
  printf "mvvm --sync=%-5s %9.1f ms  (%s bytes)\n" "$mode" "$ms" "$(stat -c %s "$dir/s.snap")"
done
bytes=$(stat -c %s "$dir/s.snap")
for conv in fsync fdatasync none; do
  ms=$(for _ in $(seq "$runs"); do
    rm -f "$dir/dd.out"
    flags=(conv=$conv)
    [ $conv = none ] && flags=()
    t0=$(now)
    dd if=/dev/zero of="$dir/dd.out" bs=1M count=$((bytes / 1048576)) "${flags[@]}" status=none
    t1=$(now)
    echo "($t1 - $t0) * 1000" | bc -l
  done | median)
  printf "dd conv=%-9s %9.1f ms\n" "$conv" "$ms"
done
"${cleanup[@]}"
