#!/usr/bin/env bash
# Builds the MVVM runtime for aarch64 Linux with Debian's cross toolchain and
# runs it under qemu-user (see docs/aarch64.md; scripts/aarch64/setup.sh
# installs the packages):
#
#  1. `cargo test --target aarch64-unknown-linux-gnu -p mvvm-rt`: the unit
#     tests, the loader and run tests, the checkpoint tests and the spec
#     testsuite runner (every spec module compiled for aarch64 inside the
#     test binary and run natively under qemu);
#  2. the host-fault test's child half, run directly (the test re-executes
#     itself, which qemu-user cannot do without binfmt_misc);
#  3. programs compiled by the x86-64 `mvvm-aot --target=aarch64` and run by
#     the aarch64 `mvvm-checkpoint` under qemu, compared with the x86-64 run
#     of the same wasm (stdout and exit status);
#  4. a checkpoint taken on x86-64 and restored on aarch64 (and back).
#
# Prints "skipped: ..." and exits 0 when the packages are missing.
# Environment: MVVM_AARCH64_TARGET_DIR (default target/aarch64),
# MVVM_X86_BIN (x86-64 tools already built; default: build them into
# target/debug), MVVM_AARCH64_SKIP_SPEC=1 to leave out the spec runner.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# Whether every test must run: CI=true or MVVM_REQUIRE_ALL=1 (as the Rust
# tests read them, see crates/mvvm-cli/tests/checkpoint_support/require.rs).
must_run() {
  local v
  for v in "${CI:-}" "${MVVM_REQUIRE_ALL:-}"; do
    case "$v" in "" | 0 | false) ;; *) return 0 ;; esac
  done
  return 1
}
# Outside CI a machine without the cross tools skips with the reason; in
# CI that is a failure: a skipped test passes without testing anything.
skip() {
  if must_run; then
    echo "aarch64 test: FAILED: cannot run: $* (CI=true or MVVM_REQUIRE_ALL=1: every test must run)" >&2
    exit 1
  fi
  echo "aarch64 test: skipped: $*"
  exit 0
}
T=aarch64-unknown-linux-gnu
QEMU_MIN=9.1

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || skip "needs an x86-64 Linux host"
[ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || skip "no /usr/bin/rustc or /usr/bin/cargo (run scripts/aarch64/setup.sh)"
[ -d /usr/lib/rustlib/$T/lib ] || skip "no aarch64 std for /usr/bin/rustc (libstd-rust-web-dev:arm64)"
command -v aarch64-linux-gnu-gcc >/dev/null || skip "no aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu)"
command -v qemu-aarch64-static >/dev/null || skip "no qemu-aarch64-static (qemu-user-static)"
[ -e /lib/ld-linux-aarch64.so.1 ] || skip "no /lib/ld-linux-aarch64.so.1 (libc6:arm64)"
qv=$(qemu-aarch64-static --version | sed -n '1s/.*version \([0-9][0-9.]*\).*/\1/p')
[ "$(printf '%s\n%s\n' "$QEMU_MIN" "$qv" | sort -V | head -n1)" = "$QEMU_MIN" ] ||
  skip "qemu-aarch64-static $qv is older than $QEMU_MIN (no openat2 for the WASI sandbox)"

passed=0
failed=0
failures=()
ok() {
  passed=$((passed + 1))
  echo "ok   $*"
}
ko() {
  failed=$((failed + 1))
  failures+=("$*")
  echo "FAIL $*"
}
now() { date +%s; }

# The x86-64 tools, with the normal toolchain and target dir (before the
# cross environment is set).
if [ -n "${MVVM_X86_BIN:-}" ]; then
  X86=$(cd "$MVVM_X86_BIN" && pwd)
else
  echo "== x86-64 mvvm-cli (normal toolchain)"
  t0=$(now)
  cargo build -q -p mvvm-cli --bins
  X86=$root/target/debug
  echo "   $(($(now) - t0)) s"
fi

# shellcheck source=env.sh
. scripts/aarch64/env.sh
A64=$CARGO_TARGET_DIR/$T/debug
QEMU=qemu-aarch64-static

echo "== aarch64 build: mvvm-rt tests and mvvm-cli (rustc $(/usr/bin/rustc -V | cut -d' ' -f2), qemu $qv)"
t0=$(now)
/usr/bin/cargo test --target $T -p mvvm-rt --no-run -q 2>&1 | grep -v '^ *Executable' || true
/usr/bin/cargo build --target $T -p mvvm-cli --bins -q
build_s=$(($(now) - t0))
echo "   build: ${build_s} s"

# A test binary cannot start another aarch64 program (the tests that
# re-execute themselves) unless binfmt_misc knows qemu for aarch64, which
# setup.sh registers when it can. Without it those tests are skipped; the
# host-fault one is run by hand below.
reexec_skip=()
if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  reexec_skip=(--skip=host_fault_is_not_claimed --skip=first_sigint_checkpoints)
  echo "   no binfmt_misc entry for aarch64: skipping the self-re-executing tests (${reexec_skip[*]})"
fi
spec_skip=()
[ "${MVVM_AARCH64_SKIP_SPEC:-0}" = 1 ] && spec_skip=(--lib --bins --tests)

# The aarch64-only code (cfg(target_arch = "aarch64")) is linted only here.
if [ -x /usr/bin/cargo-clippy ]; then
  echo "== aarch64: clippy -p mvvm-rt"
  # Debian's clippy, not rustup's proxy earlier on PATH.
  if PATH=/usr/bin:$PATH /usr/bin/cargo clippy -q --target $T -p mvvm-rt --all-targets -- -D warnings; then
    ok "clippy -p mvvm-rt (aarch64)"
  else
    ko "clippy -p mvvm-rt (aarch64)"
  fi
fi

echo "== aarch64: cargo test -p mvvm-rt under qemu"
# Checkpoint everywhere over the spec testsuite takes about a minute natively
# and ten times that under qemu (7-12 min): fewer checkpoints per instance
# here and two of the three policies (function entry and loop, still
# restored across each other); the x86-64 run of the same test keeps the
# full count and all three.
export MVVM_SPEC_CKPT_CAP="${MVVM_SPEC_CKPT_CAP:-16}"
export MVVM_SPEC_CKPT_POLICIES="${MVVM_SPEC_CKPT_POLICIES:-2}"
t0=$(now)
log=$(mktemp)
if /usr/bin/cargo test --target $T -p mvvm-rt --no-fail-fast "${spec_skip[@]}" -- "${reexec_skip[@]}" 2>&1 | tee "$log"; then
  ok "cargo test -p mvvm-rt ($(($(now) - t0)) s)"
else
  ko "cargo test -p mvvm-rt"
fi
awk '/^test result:/ { p += $4; f += $6 } END { printf "   libtest: %d passed, %d failed\n", p, f }' "$log"
grep '^spec: .* passed' "$log" | tail -n1 | sed 's/^/   /' || true
rm -f "$log"

echo "== aarch64: proposal spec directories under qemu (-O0 and -O3)"
spec_bin=$(ls -t "$A64"/deps/spec-* 2>/dev/null | grep -v '\.d$' | head -n1 || true)
if [ -n "$spec_bin" ]; then
  for opt in 0 3; do
    if out=$(MVVM_SPEC_SUITE=proposals/simd,proposals/relaxed-simd,proposals/tail-call,proposals/extended-const,proposals/exceptions,proposals/threads \
        MVVM_SPEC_OPT=$opt $QEMU "$spec_bin" 2>&1); then
      ok "proposal spec directories -O$opt: $(echo "$out" | grep '^spec: .* passed' | tail -n1)"
    else
      echo "$out" | grep -E '^(FAIL|spec:)' | head -n 40
      ko "proposal spec directories -O$opt"
    fi
  done
else
  ko "proposal spec directories: no spec test binary in $A64/deps"
fi

echo "== aarch64: a host fault is not taken for a trap"
run_bin=$(ls -t "$A64"/deps/run-* 2>/dev/null | grep -v '\.d$' | head -n1 || true)
if [ -n "$run_bin" ]; then
  set +e
  # In a subshell whose stderr is discarded: bash's "Segmentation fault"
  # report is expected here.
  (MVVM_RT_SEGV_CHILD=1 $QEMU "$run_bin" --exact host_fault_is_not_claimed; exit $?) >/dev/null 2>&1
  code=$?
  set -e
  if [ "$code" = 139 ]; then ok "host fault kills the process with SIGSEGV"; else ko "host fault: exit $code, want 139"; fi
else
  ko "host fault: no run test binary in $A64/deps"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Compiles $1.wasm for both ISAs with the x86-64 compiler, runs it on both
# (x86-64 natively, aarch64 under qemu) with the remaining arguments as
# mvvm-checkpoint flags, and compares stdout and exit status. A scratch
# directory `$work/NAME.{x86,a64}/d` is preopened when $WITH_DIR is set,
# and $STDIN is fed to both.
same() {
  local name=$1 wasm=$2
  shift 2
  local tag
  tag=$(basename "$wasm" .wasm)
  "$X86/mvvm-aot" --target=x86_64 -o "$work/$tag.x86.aot" "$wasm"
  "$X86/mvvm-aot" --target=aarch64 -o "$work/$tag.a64.aot" "$wasm"
  local isa out code
  for isa in x86 a64; do
    rm -rf "$work/$name.$isa"
    mkdir -p "$work/$name.$isa/d"
    local dir=()
    [ -n "${WITH_DIR:-}" ] && dir=(--dir "$work/$name.$isa/d::/d")
    local runner=("$X86/mvvm-checkpoint")
    [ $isa = a64 ] && runner=($QEMU "$A64/mvvm-checkpoint")
    set +e
    (cd "$work/$name.$isa" && printf '%s' "${STDIN:-}" |
      "${runner[@]}" -t "$work/$tag.$isa.aot" "${dir[@]}" "$@" >out 2>err)
    echo $? >"$work/$name.$isa/code"
    set -e
  done
  if ! cmp -s "$work/$name.x86/code" "$work/$name.a64/code"; then
    ko "$name: exit $(cat "$work/$name.a64/code") on aarch64, $(cat "$work/$name.x86/code") on x86-64"
    tail -n 5 "$work/$name.a64/err"
  elif ! cmp -s "$work/$name.x86/out" "$work/$name.a64/out"; then
    ko "$name: stdout differs"
    diff "$work/$name.x86/out" "$work/$name.a64/out" | head -n 10
  else
    ok "$name: same stdout ($(wc -c <"$work/$name.a64/out") bytes) and exit $(cat "$work/$name.a64/code")"
  fi
}

echo "== x86-64 mvvm-aot --target=aarch64, aarch64 mvvm-checkpoint under qemu, vs x86-64"
t0=$(now)
same nbody bench/wasm/nbody.wasm -a -n1000
same fannkuch bench/wasm/fannkuch-redux.wasm -a 7
STDIN=$'first line\nsecond\nlast without newline' same stdio test/c/stdio.wasm
WITH_DIR=1 same files test/c/files.wasm -a /d
WITH_DIR=1 same dirs test/c/dirs.wasm -a /d
WITH_DIR=1 same rename_unlink test/c/rename_unlink.wasm -a /d
WITH_DIR=1 same cpp_streams test/c/cpp_streams.wasm -a /d
same args_env test/c/args_env.wasm -e GREETING=hello -- x 'y z'
same exit_code test/c/exit_code.wasm -a exit,42
same clocks test/c/clocks.wasm
echo "   $(($(now) - t0)) s"

# Checkpoints on one ISA (at the probe half-way through the straight run)
# and restores on the other: both objects come from the same wasm with the
# same policy; the checkpointed run's output plus the restored run's must
# equal the straight run's. With CLONES=on-demand both objects leave
# their resume clones out: the restoring side compiles them (under qemu
# for aarch64) and places them next to its code.
cross_restore() {
  local from=$1 to=$2 wasm=$3
  shift 3
  local tag d
  tag=$(basename "$wasm" .wasm)
  d="$work/ckpt.$tag.$from-$to${CLONES:+.$CLONES}"
  rm -rf "$d" && mkdir -p "$d"
  local pol=(--enable-counter-loop-checkpoint --threshold-bits=4 ${CLONES:+--resume-clones=$CLONES})
  "$X86/mvvm-aot" "${pol[@]}" --target=x86_64 -o "$d/x86.aot" "$wasm"
  "$X86/mvvm-aot" "${pol[@]}" --target=aarch64 -o "$d/a64.aot" "$wasm"
  run() { # isa tool args...
    local isa=$1 tool=$2
    shift 2
    if [ "$isa" = a64 ]; then $QEMU "$A64/$tool" "$@"; else "$X86/$tool" "$@"; fi
  }
  set +e
  run "$from" mvvm-checkpoint -t "$d/$from.aot" "$@" --count-probes --json "$d/full.json" >"$d/full.out" 2>"$d/full.err"
  local full=$?
  local probes at
  probes=$(sed -n 's/.*"probes":\([0-9]*\).*/\1/p' "$d/full.json")
  at=$((${probes:-0} / 2))
  if [ "$at" -lt 1 ]; then
    ko "$tag on $from: the straight run counted ${probes:-no} probes (exit $full)"
    tail -n 5 "$d/full.err"
    return
  fi
  run "$from" mvvm-checkpoint -t "$d/$from.aot" "$@" -c "$at" --snapshot "$d/snap.bin" >"$d/part1.out" 2>"$d/part1.err"
  local c1=$?
  run "$to" mvvm-restore -t "$d/$to.aot" --snapshot "$d/snap.bin" >"$d/part2.out" 2>"$d/part2.err"
  local c2=$?
  set -e
  if [ "$c1" != 75 ]; then
    ko "checkpoint $tag on $from: exit $c1, want 75"
    tail -n 5 "$d/part1.err"
  elif [ "$c2" != "$full" ]; then
    ko "restore $tag on $to: exit $c2, want $full"
    tail -n 5 "$d/part2.err"
  elif ! cat "$d/part1.out" "$d/part2.out" | cmp -s - "$d/full.out"; then
    ko "$tag $from -> $to: checkpointed + restored output differs from the straight run"
    diff <(cat "$d/part1.out" "$d/part2.out") "$d/full.out" | head -n 10
  else
    ok "$tag: checkpoint on $from at probe $at, restore on $to${CLONES:+ (clones $CLONES)}: output and exit $c2 match"
  fi
}

if [ -x "$X86/mvvm-restore" ] && [ -x "$A64/mvvm-restore" ]; then
  echo "== checkpoint on one ISA, restore on the other"
  t0=$(now)
  cross_restore x86 a64 bench/wasm/nbody.wasm -a -n1000
  cross_restore a64 x86 bench/wasm/nbody.wasm -a -n1000
  cross_restore x86 a64 bench/wasm/bc.wasm -a -g10,-n2
  CLONES=on-demand cross_restore x86 a64 bench/wasm/bc.wasm -a -g10,-n2
  CLONES=on-demand cross_restore a64 x86 bench/wasm/nbody.wasm -a -n1000
  echo "   $(($(now) - t0)) s"
fi

# x86-64 → aarch64 → x86-64: checkpoint on x86-64 at probe AT, restore on
# aarch64 and checkpoint again there after NEXT more probes, restore back on
# x86-64 to the end; the three parts must print what a straight run prints.
chain_restore() { # tag wasm at next guest-args...
  local tag=$1 wasm=$2 at=$3 next=$4
  shift 4
  local d=$work/chain-$tag-$at
  mkdir -p "$d"
  "$X86/mvvm-aot" --enable-loop-checkpoint --target=x86_64 -o "$d/x86.aot" "$wasm"
  "$X86/mvvm-aot" --enable-loop-checkpoint --target=aarch64 -o "$d/a64.aot" "$wasm"
  set +e
  "$X86/mvvm-checkpoint" -t "$d/x86.aot" "$@" >"$d/full.out" 2>"$d/full.err"
  local full=$?
  "$X86/mvvm-checkpoint" -t "$d/x86.aot" "$@" -c "$at" --snapshot "$d/a.bin" >"$d/p1.out" 2>"$d/p1.err"
  local c1=$?
  $QEMU "$A64/mvvm-restore" -t "$d/a64.aot" --snapshot "$d/a.bin" -c "$next" --snapshot-out "$d/b.bin" >"$d/p2.out" 2>"$d/p2.err"
  local c2=$?
  "$X86/mvvm-restore" -t "$d/x86.aot" --snapshot "$d/b.bin" >"$d/p3.out" 2>"$d/p3.err"
  local c3=$?
  set -e
  if [ "$c1" != 75 ] || [ "$c2" != 75 ]; then
    ko "chain $tag at $at: checkpoint exits $c1 (x86-64), $c2 (aarch64), want 75 75"
    tail -n 3 "$d/p1.err" "$d/p2.err"
  elif [ "$c3" != "$full" ]; then
    ko "chain $tag at $at: final exit $c3, want $full"
    tail -n 3 "$d/p3.err"
  elif ! cat "$d/p1.out" "$d/p2.out" "$d/p3.out" | cmp -s - "$d/full.out"; then
    ko "chain $tag at $at: x86-64 -> aarch64 -> x86-64 output differs from the straight run"
  else
    ok "chain $tag: x86-64 at probe $at -> aarch64 (+$next probes) -> x86-64: output and exit $c3 match"
  fi
}

if [ -x "$X86/mvvm-restore" ] && [ -x "$A64/mvvm-restore" ]; then
  echo "== chains x86-64 -> aarch64 -> x86-64 at several points"
  t0=$(now)
  # compute.wasm executes about 1.07 million loop probes.
  for at in 1 5000 300000 1000000; do
    chain_restore compute test/ckpt/compute.wasm "$at" 2000
  done
  echo "   $(($(now) - t0)) s"
fi

echo "== aarch64 summary"
for f in "${failures[@]}"; do echo "   failed: $f"; done
echo "aarch64: $passed passed, $failed failed"
[ "$failed" = 0 ]
