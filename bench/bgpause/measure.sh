#!/usr/bin/env bash
# Pause of periodic checkpoints written in the background, and the
# guest's slowdown while they are written: memfill at each size, run
# without checkpoints, with `--every` and with `--every --incremental`,
# interleaved, REPS times; prints per mode the median of the per-run
# median pause, the largest pause seen and the median wall time.
# Usage: measure.sh MVVM_CHECKPOINT [SIZES_MIB] [REPS] [OLD_MVVM_CHECKPOINT]
# (the optional old binary is run as a further `--every` mode, to compare
# builds side by side). Needs memfill.aot next to this script's output
# dir or MEMFILL_AOT.
set -euo pipefail
NEW=$1; SIZES=${2:-64,256,1024}; REPS=${3:-3}; OLD=${4:-}
OUT=$(mktemp -d)
AOT=${MEMFILL_AOT:?set MEMFILL_AOT to memfill compiled with a checkpoint policy}
declare -A PASSES=([64]=24 [256]=6 [512]=3 [1024]=2 [2048]=1)
run() { # mode size rep
  local mode=$1 mib=$2 bin=$NEW extra=()
  case $mode in
    none) ;;
    every) extra=(--every 0.2) ;;
    incr) extra=(--every 0.2 --incremental) ;;
    old) bin=$OLD; extra=(--every 0.2) ;;
  esac
  local t0 t1; t0=$(date +%s.%N)
  "$bin" -t "$AOT" "${extra[@]}" --snapshot "$OUT/m.bin" -a "-m,$mib,-p,${PASSES[$mib]:-2}" \
    >"$OUT/out" 2>"$OUT/err"
  t1=$(date +%s.%N)
  local pauses; pauses=$(grep -o 'paused [0-9.]* ms' "$OUT/err" | awk '{print $2}' | sort -n | tr '\n' ' ' || true)
  echo "$mode $mib $(echo "$t1 - $t0" | bc) $pauses" >>"$OUT/rows"
  rm -f "$OUT"/m*.bin
}
modes=(none every incr); [ -n "$OLD" ] && modes+=(old)
for mib in ${SIZES//,/ }; do
  for r in $(seq "$REPS"); do for m in "${modes[@]}"; do run "$m" "$mib" "$r"; done; done
done
python3 - "$OUT/rows" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    f = line.split(); mode, mib, wall = f[0], int(f[1]), float(f[2]); p = [float(x) for x in f[3:]]
    rows.setdefault((mib, mode), []).append((wall, p))
print("| MiB | mode | runs | checkpoints/run | median pause ms | max pause ms | median wall s | wall vs none |")
print("|---|---|---|---|---|---|---|---|")
for (mib, mode), runs in sorted(rows.items()):
    wall = st.median(w for w, _ in runs)
    none = st.median(w for w, _ in rows[(mib, "none")]) if (mib, "none") in rows else wall
    allp = [x for _, p in runs for x in p]
    med = st.median(st.median(p) for _, p in runs if p) if allp else float("nan")
    n = st.median(len(p) for _, p in runs)
    print(f"| {mib} | {mode} | {len(runs)} | {n:g} | {med:.2f} | {max(allp) if allp else float('nan'):.2f} | {wall:.2f} | {wall/none:.2f} |")
PY
rm -rf "$OUT"
