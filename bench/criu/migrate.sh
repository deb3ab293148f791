#!/usr/bin/env bash
# CRIU's migration downtime for the native build of bench/src/memfill.c, per
# memory size, to set beside MVVM's (scripts/netns/downtime.sh) on the same
# machine. Stop-and-copy through CRIU's page server over loopback: the
# receiver runs `criu page-server`, the sender `criu dump --page-server`
# (the task is frozen from the start of the dump), the images are handed
# over and `criu restore -d` resumes the task. Downtime here is from the
# start of `criu dump` to the return of `criu restore -d` (the task runs
# again); it leaves out the process start-up that MVVM's figure includes,
# so it slightly favours CRIU.
#
#   sudo bench/criu/migrate.sh [--sizes "64 256 1024"] [--criu PATH]
#
# Every migrated run's output is compared with an uninterrupted one.
# Needs root and a CRIU that passes `criu check` (bench/criu/build.sh builds
# one; without --criu it is called to find or build it). Prints one line
# per size, and the reasons the pre-copy and lazy modes cannot run when
# `criu check` says so (pre-dump needs the kernel's soft-dirty bits).
# Exit 77 (skipped) without root or a working CRIU.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
sizes="64 256 1024"
criu=
port=7850
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift 2 ;;
    --criu) criu=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "migrate.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "migrate.sh: skipped: CRIU needs root" >&2; exit 77; }
if [ -z "$criu" ]; then
  criu=$("$root/bench/criu/build.sh") || { echo "migrate.sh: skipped: no CRIU (bench/criu/build.sh failed)" >&2; exit 77; }
fi
"$criu" check >/dev/null 2>&1 || { echo "migrate.sh: skipped: criu check fails" >&2; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mvvm-criu-migrate.XXXXXX")
task=
cleanup() {
  [ -n "$task" ] && kill -9 "$task" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -I"$root/bench/src" -o "$work/memfill" "$root/bench/src/memfill.c"

# What this kernel lets CRIU do besides stop-and-copy.
if ! "$criu" check --feature mem_dirty_track 2>&1 | grep -q "is supported\|Looks good"; then
  echo "criu: pre-copy (pre-dump) unavailable: criu check --feature mem_dirty_track fails (no soft-dirty bits in this kernel)"
fi

ms() { echo $(( ($2 - $1) / 1000000 )); }

for m in $sizes; do
  # Enough passes that the task is still running when it is dumped.
  passes=$(( 3072 / m > 12 ? 3072 / m : 12 ))
  "$work/memfill" -m "$m" -p "$passes" >"$work/base-$m.out"
  d="$work/run-$m"
  mkdir -p "$d/img" "$d/rimg"
  # A task of its own session, without a terminal, as CRIU wants it.
  setsid "$work/memfill" -m "$m" -p "$passes" </dev/null >"$d/out" 2>&1 &
  task=$!
  disown "$task"
  # Dump during the passes, after the fill (about a second per GiB here).
  sleep "$(awk -v m="$m" 'BEGIN { s = m / 256; if (s < 0.5) s = 0.5; print s }')"
  port=$((port + 1))
  "$criu" page-server -D "$d/rimg" --address 127.0.0.1 --port "$port" -d -o ps.log >/dev/null 2>&1
  t0=$(date +%s%N)
  "$criu" dump -t "$task" -D "$d/img" --page-server --address 127.0.0.1 --port "$port" -o dump.log \
    || { echo "migrate.sh: criu dump failed at $m MiB (log $d/img/dump.log)" >&2; trap - EXIT; exit 1; }
  t1=$(date +%s%N)
  cp "$d/img"/*.img "$d/rimg/"
  "$criu" restore -D "$d/rimg" -d -o restore.log \
    || { echo "migrate.sh: criu restore failed at $m MiB (log $d/rimg/restore.log)" >&2; trap - EXIT; exit 1; }
  t2=$(date +%s%N)
  # The restored task is no child of ours: wait for it to end.
  while kill -0 "$task" 2>/dev/null; do sleep 0.05; done
  t3=$(date +%s%N)
  task=
  bytes=$(du -cb "$d/rimg"/pages-*.img | tail -1 | cut -f1)
  if ! cmp -s "$d/out" "$work/base-$m.out"; then
    echo "migrate.sh: $m MiB: migrated output differs from an uninterrupted run" >&2
    exit 1
  fi
  printf 'criu     %5s MiB  pages %10s bytes  dump %8s ms  restore %6s ms  downtime %8s ms  rest of run %6s ms  output ok\n' \
    "$m" "$bytes" "$(ms "$t0" "$t1")" "$(ms "$t1" "$t2")" "$(ms "$t0" "$t2")" "$(ms "$t2" "$t3")"
done
