#!/usr/bin/env bash
# Migration downtime of a running program, per memory size: from the
# checkpoint's trigger on the sender to the first instruction resumed on
# the receiver (mvvm-restore's `downtime_ms`, same machine clock), over
# loopback and between two network namespaces joined by a veth pair (a real
# network path through the kernel's stack: two devices, two routing
# tables).
#
#   scripts/netns/downtime.sh [--sizes "16 64 256"] [--bin DIR] [--mode both|loopback|netns]
#                             [--key FILE] [--live [--max-rounds N]] [--slow-writer]
#                             [--work DIR] [--port N]
#
# With --key FILE both sides authenticate and encrypt the transfer (see
# docs/security.md); without it the network-namespace receiver
# listens with --insecure (its address is not loopback). Each line also
# gives the total time, from the sender's start to the receiver's exit.
#
# The workload is bench/wasm/memfill.wasm (`-m MIB -p 3`: fills MIB of
# linear memory, then three read-modify-write passes over it), compiled
# with the counter-loop policy and checkpointed with `-c` at half of its
# probes (inside the second pass, so the whole memory is live). Every
# migrated run's output is compared with an uninterrupted one.
#
# --live migrates with pre-copy (`mvvm-checkpoint --live`: memory is sent
# in rounds while the program runs, then the stop sends only what was
# written since the last round) and implies --slow-writer: the workload is
# then `memfill -m MIB -p 30 -w 8 -d 20000` (passes over an 8 MiB working
# set, sleeping 20 ms per MiB written: about 50 MiB/s of writes, less than
# the link carries), checkpointed a quarter into its passes. --slow-writer
# alone runs that workload with the usual stop-and-copy, for comparison.
# Live lines add the rounds (MiB each), the final part and the pause.
#
# The network mode needs root and `ip netns`; without them it is skipped
# with the reason on stderr and exit status 77 (when only the network mode
# was asked for). It creates two namespaces of its own (mvvm-snd-PID,
# mvvm-rcv-PID) and a veth pair that exists only inside them, with
# addresses 10.77.0.1 and 10.77.0.2: nothing is sent outside this machine.
# Everything it made is removed on exit, even on failure or Ctrl-C.
#
# --work DIR keeps the compiled module and the uninterrupted runs' outputs
# in DIR (kept on exit) and reuses them on the next call with the same DIR:
# the bench harness (`mvvm-bench migration`) calls this script once per
# size, mode and repetition. --port N: the first port used (default 7790;
# one more per migration). Each result line gives `sent` (the bytes the
# sender put on the wire: the snapshot, or for --live every round and the
# final part) and `migration` (stop-and-copy: the downtime; --live: from
# the first trigger to the first instruction on the receiver, the
# sender's transfer time plus the downtime past its pause).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
sizes="16 64 256"
bin="$root/target/release"
mode=both
port=7790
key=
live=0
slow=0
max_rounds=
keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --live) live=1; slow=1; shift ;;
    --max-rounds) max_rounds=$2; shift 2 ;;
    --slow-writer) slow=1; shift ;;
    --work) keep=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    -h|--help) sed -n '2,49p' "$0"; exit 0 ;;
    *) echo "downtime.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$mode" in both|loopback|netns) ;; *) echo "downtime.sh: --mode both|loopback|netns" >&2; exit 2 ;; esac
for t in mvvm-aot mvvm-checkpoint mvvm-restore; do
  [ -x "$bin/$t" ] || { echo "downtime.sh: no $bin/$t (cargo build --release -p mvvm-cli, or --bin DIR)" >&2; exit 2; }
done

# --key for both sides, when given.
key_args=()
[ -n "$key" ] && key_args=(--key "$key")

# Why the network mode cannot run here, or nothing.
netns_unavailable() {
  if [ "$(id -u)" != 0 ]; then echo "not root"; return; fi
  if ! command -v ip >/dev/null; then echo "no ip command (apt-get install iproute2)"; return; fi
  local probe="mvvm-probe-$$"
  if ! ip netns add "$probe" 2>/dev/null; then echo "ip netns add fails (no CAP_SYS_ADMIN?)"; return; fi
  ip netns del "$probe" 2>/dev/null || true
}

why=
if [ "$mode" != loopback ]; then
  why=$(netns_unavailable)
  if [ -n "$why" ] && [ "$mode" = netns ]; then
    echo "downtime.sh: network-namespace mode skipped: $why" >&2
    exit 77
  fi
fi

if [ -n "$keep" ]; then
  mkdir -p "$keep"
  work=$(cd "$keep" && pwd)
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/mvvm-downtime.XXXXXX")
fi
ns_snd="mvvm-snd-$$"
ns_rcv="mvvm-rcv-$$"
made_ns=0
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$made_ns" = 1 ]; then
    ip netns del "$ns_snd" 2>/dev/null || true
    ip netns del "$ns_rcv" 2>/dev/null || true
  fi
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The workload's arguments for MIB (and PASSES).
wl() {
  if [ "$slow" = 1 ]; then echo "-m,$1,-p,${2:-30},-w,8,-d,20000"; else echo "-m,$1,-p,${2:-3}"; fi
}
live_args=()
if [ "$live" = 1 ]; then
  live_args=(--live)
  [ -n "$max_rounds" ] && live_args+=(--max-rounds "$max_rounds")
fi

# A JSON field of a one-line summary.
field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1" | tr -d '"'; }

aot="$work/memfill.aot"
if [ -z "$keep" ] || ! [ -s "$aot" ]; then
  "$bin/mvvm-aot" --enable-counter-loop-checkpoint --threshold-bits=10 \
    -o "$aot" "$root/bench/wasm/memfill.wasm"
fi

# Baseline per size: output and probe count of an uninterrupted run.
# (`--count-probes` where the tools have it: probes are then counted
# exactly, otherwise they stay on their fast path.)
count=()
"$bin/mvvm-checkpoint" --help | grep -q -- --count-probes && count=(--count-probes)
declare -A probes
declare -A trigger
declare -A base
for m in $sizes; do
  b="$work/base-$m-slow$slow"
  base[$m]="$b.out"
  if [ -z "$keep" ] || ! [ -s "$b.json" ]; then
    "$bin/mvvm-checkpoint" -t "$aot" -a "$(wl "$m")" "${count[@]}" --json "$b.json" >"$b.out"
  fi
  probes[$m]=$(field "$b.json" probes)
  if ! [ "${probes[$m]}" -gt 2 ] 2>/dev/null; then
    echo "downtime.sh: no probe count from the uninterrupted run: $(cat "$b.json")" >&2
    exit 1
  fi
  trigger[$m]=$((probes[$m] / 2))
  if [ "$slow" = 1 ]; then
    # A quarter into the passes: the fill's probes from a run without them.
    if [ -z "$keep" ] || ! [ -s "$work/fill-$m.json" ]; then
      "$bin/mvvm-checkpoint" -t "$aot" -a "$(wl "$m" 0)" "${count[@]}" --json "$work/fill-$m.json" >/dev/null
    fi
    fill=$(field "$work/fill-$m.json" probes)
    trigger[$m]=$((fill + (probes[$m] - fill) / 4))
  fi
done

# Waits until FILE contains TEXT (the receiver saying it listens).
wait_for() {
  for _ in $(seq 1 500); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  echo "downtime.sh: timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}

# One migration: run PREFIX_SND... mvvm-checkpoint to ADDR, PREFIX_RCV...
# mvvm-restore listening on ADDR; prints a result line.
migrate() {
  local label=$1 m=$2 addr=$3; shift 3
  local -a snd=() rcv=() auth=("${key_args[@]}")
  if [ "$label" = netns ]; then
    snd=(ip netns exec "$ns_snd")
    rcv=(ip netns exec "$ns_rcv")
    # Not loopback: the receiver needs --key, or --insecure on this
    # private veth pair.
    [ -n "$key" ] || auth=(--insecure)
  fi
  local d="$work/$label-$m"
  mkdir -p "$d"
  port=$((port + 1))
  "${rcv[@]}" "$bin/mvvm-restore" -t "$aot" -i "$addr" -e "$port" "${auth[@]}" \
    --json "$d/rcv.json" >"$d/rcv.out" 2>"$d/rcv.err" &
  local rpid=$!
  pids+=("$rpid")
  wait_for "$d/rcv.err" "waiting for a snapshot"
  local c=${trigger[$m]}
  local code=0 start end
  start=$(date +%s%N)
  "${snd[@]}" "$bin/mvvm-checkpoint" -t "$aot" -a "$(wl "$m")" -c "$c" "${key_args[@]}" \
    -o "$addr" -s "$port" "${live_args[@]}" --json "$d/snd.json" >"$d/snd.out" 2>"$d/snd.err" || code=$?
  if [ "$code" != 75 ]; then
    echo "downtime.sh: $label $m MiB: checkpoint exited $code" >&2
    cat "$d/snd.err" >&2
    return 1
  fi
  code=0
  wait "$rpid" || code=$?
  end=$(date +%s%N)
  if [ "$code" != 0 ]; then
    echo "downtime.sh: $label $m MiB: restore exited $code" >&2
    cat "$d/rcv.err" >&2
    return 1
  fi
  if ! cat "$d/snd.out" "$d/rcv.out" | cmp -s - "${base[$m]}"; then
    echo "downtime.sh: $label $m MiB: migrated output differs from an uninterrupted run" >&2
    return 1
  fi
  local extra= sent migration downtime
  downtime=$(field "$d/rcv.json" downtime_ms)
  sent=$(field "$d/snd.json" snapshot_bytes)
  migration=$downtime
  if [ "$live" = 1 ]; then
    local rounds final pause xfer
    rounds=$(sed -n 's/.*"round_bytes":\[\([^]]*\)\].*/\1/p' "$d/snd.json" |
      tr ',' '\n' | awk '{printf "%s%.1f", (NR>1?" ":""), $1/1048576}')
    final=$(field "$d/snd.json" final_bytes)
    pause=$(field "$d/snd.json" pause_ms)
    xfer=$(field "$d/snd.json" transfer_ms)
    extra="live rounds [$rounds] MiB  final $final B  transfer $xfer ms  pause $pause ms  "
    sent=$(field "$d/snd.json" total_bytes)
    migration=$(awk -v x="$xfer" -v d="$downtime" -v p="$pause" 'BEGIN { printf "%.2f", x + (d > p ? d - p : 0) }')
  fi
  printf '%-8s %5s MiB  snapshot %10s bytes  sent %10s bytes  checkpoint+send %8s ms  downtime %8s ms  migration %8s ms  total %8s ms  %s%s  output ok\n' \
    "$label" "$m" "$(field "$d/snd.json" snapshot_bytes)" "$sent" "$(field "$d/snd.json" checkpoint_ms)" \
    "$downtime" "$migration" "$(( (end - start) / 1000000 ))" "$extra" \
    "$([ -n "$key" ] && echo "key" || echo "no-key")"
}

if [ "$mode" != netns ]; then
  for m in $sizes; do migrate loopback "$m" 127.0.0.1; done
fi
if [ "$mode" != loopback ]; then
  if [ -n "$why" ]; then
    echo "downtime.sh: network-namespace mode skipped: $why" >&2
    exit 0
  fi
  ip netns add "$ns_snd"
  made_ns=1
  ip netns add "$ns_rcv"
  ip -n "$ns_snd" link add veth-snd type veth peer name veth-rcv netns "$ns_rcv"
  ip -n "$ns_snd" addr add 10.77.0.1/24 dev veth-snd
  ip -n "$ns_rcv" addr add 10.77.0.2/24 dev veth-rcv
  for ns in "$ns_snd" "$ns_rcv"; do
    ip -n "$ns" link set lo up
  done
  ip -n "$ns_snd" link set veth-snd up
  ip -n "$ns_rcv" link set veth-rcv up
  ip netns exec "$ns_snd" ping -c1 -W2 10.77.0.2 >/dev/null 2>&1 || true
  for m in $sizes; do migrate netns "$m" 10.77.0.2; done
fi
