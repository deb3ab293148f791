#!/usr/bin/env bash
# The main job, end to end: compile a bundled program (betweenness
# centrality on a Kronecker graph), run it uninterrupted, run it again and
# checkpoint it mid-way, restore the snapshot, and check that the
# checkpointed run plus the restored run printed exactly what the
# uninterrupted run printed. Then the same with a program that writes files
# in a granted directory, moved between the checkpoint and the restore: the
# restoring command grants the directory (a snapshot never does).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MVVM_BIN:-target/release}
[ -x "$BIN/mvvm-aot" ] || cargo build --release -p mvvm-cli
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== compile bench/wasm/bc.wasm with the counter-loop policy"
"$BIN/mvvm-aot" --opt-level=3 --threshold-bits=8 --enable-counter-loop-checkpoint \
  -o "$work/bc.aot" bench/wasm/bc.wasm

echo "== run it uninterrupted"
"$BIN/mvvm-checkpoint" -t "$work/bc.aot" -a -g14,-n3 --count-probes --json "$work/full.json" >"$work/full.out"
cat "$work/full.out"
probes=$(sed -n 's/.*"probes":\([0-9]*\).*/\1/p' "$work/full.json")
at=$((probes / 2))
echo "   ($probes probes executed; checkpointing at probe $at)"

echo "== run it again, checkpoint at probe $at"
set +e
"$BIN/mvvm-checkpoint" -t "$work/bc.aot" -a -g14,-n3 -c "$at" >"$work/part1.out"
code=$?
set -e
[ "$code" = 75 ] || { echo "expected exit code 75 (checkpointed), got $code"; exit 1; }
cat "$work/part1.out"
ls -l "$work/bc.bin"

echo "== restore it"
"$BIN/mvvm-restore" -t "$work/bc.aot" >"$work/part2.out"
cat "$work/part2.out"

if cat "$work/part1.out" "$work/part2.out" | cmp -s - "$work/full.out"; then
  echo "== OK: checkpointed + restored output equals the uninterrupted output"
else
  echo "== MISMATCH"; diff <(cat "$work/part1.out" "$work/part2.out") "$work/full.out"; exit 1
fi

echo
echo "== files: test/ckpt/files.wasm writes into the directory it is granted as /data"
"$BIN/mvvm-aot" --enable-loop-checkpoint -o "$work/files.aot" test/ckpt/files.wasm
mkdir -p "$work/ref" "$work/here"
"$BIN/mvvm-checkpoint" -t "$work/files.aot" --dir "$work/ref::/data" -a /data \
  --count-probes --json "$work/files.json" >"$work/files-full.out"
probes=$(sed -n 's/.*"probes":\([0-9]*\).*/\1/p' "$work/files.json")
set +e
"$BIN/mvvm-checkpoint" -t "$work/files.aot" --dir "$work/here::/data" -a /data \
  -c $((probes / 2)) --snapshot "$work/files.bin" >"$work/files1.out"
code=$?
set -e
[ "$code" = 75 ] || { echo "expected exit code 75 (checkpointed), got $code"; exit 1; }
echo "   checkpointed at probe $((probes / 2)) with --dir $work/here::/data"
set +e
"$BIN/mvvm-restore" -t "$work/files.aot" --snapshot "$work/files.bin" >/dev/null 2>"$work/refused.err"
code=$?
set -e
echo "   restore without a grant: exit $code: $(sed -n 's/^mvvm-restore: //p' "$work/refused.err" | head -n 1)"
[ "$code" = 125 ] || { echo "expected the restore to be refused"; exit 1; }
mv "$work/here" "$work/moved"
echo "== restore, granting the moved directory: --dir $work/moved::/data"
"$BIN/mvvm-restore" -t "$work/files.aot" --snapshot "$work/files.bin" \
  --dir "$work/moved::/data" >"$work/files2.out"
if cat "$work/files1.out" "$work/files2.out" | cmp -s - "$work/files-full.out" &&
  diff -r "$work/ref" "$work/moved" >/dev/null; then
  echo "== OK: same output and the same files as the uninterrupted run"
else
  echo "== MISMATCH"; diff -r "$work/ref" "$work/moved"; exit 1
fi
