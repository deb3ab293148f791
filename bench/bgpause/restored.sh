#!/usr/bin/env bash
# Pause of periodic checkpoints of RESTORED runs, and the restore's
# start-up: memfill at each size (P passes: 12 at 256 MiB, 6 at 1 GiB)
# is checkpointed once just after its first pass (its whole memory
# written, so the snapshot maps all of it), then restored with `--every 0.2`
# REPS times per build, builds interleaved; prints per build and size
# the median of the per-run median pause, the largest pause seen, the
# median `startup_ms` (from `--json`) and the median wall time; and, from
# the capture's debug log, the program thread's CPU time in each pause:
# the largest, and how many pauses over 5 ms also had over 5 ms of CPU
# (the others waited for a CPU: the machine's load, not the pause's work).
# Usage: restored.sh "NAME=BINDIR ..." [SIZES_MIB] [REPS]
# (each BINDIR holds mvvm-checkpoint and mvvm-restore). Needs MEMFILL_AOT
# (memfill compiled with --enable-counter-loop-checkpoint).
set -euo pipefail
BUILDS=$1; SIZES=${2:-256,1024}; REPS=${3:-3}
AOT=${MEMFILL_AOT:?set MEMFILL_AOT to memfill compiled with a checkpoint policy}
OUT=$(mktemp -d)
declare -A PASSES=([64]=48 [256]=12 [512]=8 [1024]=6 [2048]=3)
firstdir=${BUILDS#*=}; firstdir=${firstdir%% *}
for mib in ${SIZES//,/ }; do
  passes=${PASSES[$mib]:-4}
  count() { # passes: probes of a run
    "$firstdir/mvvm-checkpoint" -t "$AOT" --count-probes --json "$OUT/count.json" \
      --snapshot "$OUT/unused.bin" -a "-m,$mib,-p,$1" >/dev/null
    sed -n 's/.*"probes":\([0-9]*\).*/\1/p' "$OUT/count.json"
  }
  fill=$(count 0); whole=$(count "$passes")
  "$firstdir/mvvm-checkpoint" -t "$AOT" -c $((fill + (whole - fill) / passes + 1)) \
    --snapshot "$OUT/base.bin" -a "-m,$mib,-p,$passes" >/dev/null || [ $? -eq 75 ]
  for r in $(seq "$REPS"); do
    for b in $BUILDS; do
      name=${b%%=*}; dir=${b#*=}
      cp "$OUT/base.bin" "$OUT/s.bin"
      sync "$OUT/s.bin"
      t0=$(date +%s.%N)
      MVVM_LOG=mvvm_rt::checkpoint::capture=debug \
      "$dir/mvvm-restore" -t "$AOT" --snapshot "$OUT/s.bin" --snapshot-out "$OUT/o.bin" \
        --every 0.2 --json "$OUT/j.json" >/dev/null 2>"$OUT/err"
      t1=$(date +%s.%N)
      startup=$(sed -n 's/.*"startup_ms":\([0-9.]*\).*/\1/p' "$OUT/j.json")
      pauses=$(grep -o 'paused [0-9.]* ms' "$OUT/err" | awk '{print $2}' | tr '\n' ' ' || true)
      cpus=$(grep 'periodic checkpoint captured' "$OUT/err" | sed -n 's/.* cpu_ms=\([0-9.e-]*\).*/\1/p' | tr '\n' ',' || true)
      echo "$name $mib $(echo "$t1 - $t0" | bc) $startup ${cpus:-,} $pauses" >>"$OUT/rows"
      rm -f "$OUT"/s*.bin "$OUT"/o*.bin
    done
  done
done
cat "$OUT/rows" >&2
python3 - "$OUT/rows" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    f = line.split(); name, mib, wall, startup = f[0], int(f[1]), float(f[2]), float(f[3])
    cpu = [float(x) for x in f[4].split(",") if x]
    p = [float(x) for x in f[5:]]
    # The debug line and the tool's line come per checkpoint, in order.
    cpu = cpu if len(cpu) == len(p) else [float("nan")] * len(p)
    rows.setdefault((mib, name), []).append((wall, startup, p, cpu))
print("| MiB | build | runs | checkpoints/run | median pause ms | max pause ms | pauses > 5 ms | of which > 5 ms CPU | max pause CPU ms | median startup_ms | median wall s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (mib, name), runs in sorted(rows.items()):
    allp = [x for _, _, p, _ in runs for x in p]
    allc = [c for _, _, _, c in runs for c in c]
    med = st.median(st.median(p) for _, _, p, _ in runs if p) if allp else float("nan")
    n = st.median(len(p) for _, _, p, _ in runs)
    over = sum(1 for x in allp if x > 5)
    over_cpu = sum(1 for x, c in zip(allp, allc) if x > 5 and c > 5)
    print(f"| {mib} | {name} | {len(runs)} | {n:g} | {med:.2f} | {max(allp) if allp else float('nan'):.2f} | {over}/{len(allp)} | {over_cpu} | {max(allc) if allc else float('nan'):.2f} | {st.median(r[1] for r in runs):.1f} | {st.median(r[0] for r in runs):.2f} |")
PY
rm -rf "$OUT"
