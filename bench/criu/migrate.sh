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
#   sudo bench/criu/migrate.sh [--sizes "64 256 1024"] [--criu PATH] [--work DIR] [--port N]
#
# The workload is the one of downtime.sh --slow-writer and --live:
# `memfill -m MIB -p 30 -w 8 -d 20000` (all of MIB filled and live, passes
# over an 8 MiB working set at about 50 MiB/s of writes), dumped a quarter
# into its passes (once the task's resident memory holds the whole fill,
# plus a quarter of the passes' 4.8 s of sleeping).
#
# Every migrated run's output is compared with an uninterrupted one.
# Needs root and a CRIU that passes `criu check` (bench/criu/build.sh builds
# one; without --criu it is called to find or build it). Prints one line
# per size, and one line each for the pre-copy and lazy modes saying why
# they do not run (`criu: pre-copy ...`, `criu: lazy ...`; pre-dump needs
# the kernel's soft-dirty bits). Exit 77 (skipped) without root or a
# working CRIU, the reason on stderr.
#
# --work DIR keeps the native build and the uninterrupted runs' outputs in
# DIR and reuses them (the bench harness, `mvvm-bench migration`, calls
# this script once per size and repetition); --port N: the first port.
# Each line gives `sent` (every image file the receiver ends up with: the
# pages the page server received and the rest copied over) and
# `migration` (the total migration time: for stop-and-copy, the downtime).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
sizes="64 256 1024"
criu=
port=7850
keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift 2 ;;
    --criu) criu=$2; shift 2 ;;
    --work) keep=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "migrate.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "migrate.sh: skipped: CRIU needs root" >&2; exit 77; }
if [ -z "$criu" ]; then
  criu=$("$root/bench/criu/build.sh") || { echo "migrate.sh: skipped: no CRIU (bench/criu/build.sh failed)" >&2; exit 77; }
fi
"$criu" check >/dev/null 2>&1 || { echo "migrate.sh: skipped: criu check fails" >&2; exit 77; }

if [ -n "$keep" ]; then
  mkdir -p "$keep"
  work=$(cd "$keep" && pwd)
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/mvvm-criu-migrate.XXXXXX")
fi
task=
cleanup() {
  [ -n "$task" ] && kill -9 "$task" 2>/dev/null || true
  if [ -n "$keep" ]; then rm -rf "$work"/run-*; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$keep" ] || ! [ -x "$work/memfill" ] || [ "$root/bench/src/memfill.c" -nt "$work/memfill" ]; then
  cc -O2 -I"$root/bench/src" -o "$work/memfill" "$root/bench/src/memfill.c"
fi

# What this kernel lets CRIU do besides stop-and-copy.
if "$criu" check --feature mem_dirty_track >/dev/null 2>&1; then
  echo "criu: pre-copy (pre-dump) not run: criu check allows it, but this script does not drive pre-dump yet"
else
  echo "criu: pre-copy (pre-dump) unavailable: criu check --feature mem_dirty_track fails (no soft-dirty bits in this kernel)"
fi
if "$criu" check --feature uffd-noncoop >/dev/null 2>&1; then
  echo "criu: lazy (lazy-pages) not run: criu check allows it (uffd-noncoop), but restoring on the dumping host needs the task in a PID namespace of its own (its pid is still taken by the lazy source), which this script does not set up"
else
  echo "criu: lazy (lazy-pages) unavailable: criu check --feature uffd-noncoop fails (no userfaultfd with non-cooperative events)"
fi

# The workload's arguments (as downtime.sh --slow-writer runs it).
passes=30
args() { echo "-m $1 -p $passes -w 8 -d 20000"; }
# Resident memory of a task, in KiB (0 once it is gone).
rss_kib() { awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

ms() { echo $(( ($2 - $1) / 1000000 )); }

for m in $sizes; do
  if [ -z "$keep" ] || ! [ -s "$work/base-$m.out" ]; then
    # shellcheck disable=SC2046
    "$work/memfill" $(args "$m") >"$work/base-$m.out"
  fi
  d="$work/run-$m"
  rm -rf "$d"
  mkdir -p "$d/img" "$d/rimg"
  # A task of its own session, without a terminal, as CRIU wants it.
  # shellcheck disable=SC2046
  setsid "$work/memfill" $(args "$m") </dev/null >"$d/out" 2>&1 &
  task=$!
  disown "$task"
  # Dump a quarter into the passes: once the fill is resident, plus a
  # quarter of the passes' sleeping (30 passes x 8 MiB x 20 ms / 4).
  for _ in $(seq 1 6000); do
    [ "$(rss_kib "$task")" -ge $((m * 1024)) ] && break
    kill -0 "$task" 2>/dev/null || break
    sleep 0.01
  done
  sleep 1.2
  kill -0 "$task" 2>/dev/null || { echo "migrate.sh: $m MiB: the task ended before the dump" >&2; exit 1; }
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
  sent=$(du -cb "$d/rimg"/*.img | tail -1 | cut -f1)
  if ! cmp -s "$d/out" "$work/base-$m.out"; then
    echo "migrate.sh: $m MiB: migrated output differs from an uninterrupted run" >&2
    exit 1
  fi
  printf 'criu     %5s MiB  pages %10s bytes  sent %10s bytes  dump %8s ms  restore %6s ms  downtime %8s ms  migration %8s ms  rest of run %6s ms  output ok\n' \
    "$m" "$bytes" "$sent" "$(ms "$t0" "$t1")" "$(ms "$t1" "$t2")" "$(ms "$t0" "$t2")" "$(ms "$t0" "$t2")" "$(ms "$t2" "$t3")"
done
