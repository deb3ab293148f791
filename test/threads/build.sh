#!/usr/bin/env bash
# Rebuilds the committed .wasm of the threaded test programs and their
# .expected outputs, and checks them.
#
#   ./build.sh            build NAME.wasm (clang-19, wasm32-wasip1-threads) and
#                         NAME.expected (the native gcc build's stdout), then check
#   ./build.sh --check    only check the committed files (no clang needed):
#                         every .wasm has the wasi-threads shape, and, when Node.js
#                         is installed, runs it under a minimal wasi-threads host
#                         (worker_threads + node:wasi) and compares with .expected
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

PROGRAMS="pool atomic_reduce futex_pc bc_mt jacobi-2d_mt gemm_mt"
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

# ---- running under Node's wasi-threads host --------------------------------
run_node_checks() {
    if ! command -v node >/dev/null; then
        echo "node not installed: the .wasm files were not run"
        return 0
    fi
    local host
    host=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$host'" RETURN
    cat > "$host/run.mjs" <<'EOF'
// wasi-threads host: the module's shared memory is created here and
// imported by every instance; `wasi` `thread-spawn` starts a worker that
// instantiates the module again on the same memory and calls
// wasi_thread_start(tid, arg). WASI preview1 comes from node:wasi.
import { WASI } from 'node:wasi';
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);

function imports(module, memory, shared) {
  const wasi = new WASI({ version: 'preview1', args: shared.args, env: shared.env });
  const obj = wasi.getImportObject();
  obj.env = { memory };
  obj.wasi = {
    'thread-spawn': (arg) => {
      const tid = Atomics.add(shared.tids, 0, 1) + 1;
      const w = new Worker(self, { workerData: { module, memory, tid, arg, shared } });
      w.unref();
      w.on('error', (e) => { console.error('thread', tid, 'failed:', e); process.exit(99); });
      return tid;
    },
  };
  return { wasi, obj };
}

if (isMainThread) {
  const [file, pages, ...rest] = process.argv.slice(2);
  const module = new WebAssembly.Module(readFileSync(file));
  const memory = new WebAssembly.Memory({ initial: 2, maximum: Number(pages), shared: true });
  const env = {};
  if (process.env.OMP_NUM_THREADS) env.OMP_NUM_THREADS = process.env.OMP_NUM_THREADS;
  const shared = { args: [file, ...rest], env, tids: new Int32Array(new SharedArrayBuffer(4)) };
  const { wasi, obj } = imports(module, memory, shared);
  process.exit(wasi.start(new WebAssembly.Instance(module, obj)) ?? 0);
} else {
  const { module, memory, tid, arg, shared } = workerData;
  const { wasi, obj } = imports(module, memory, shared);
  const instance = new WebAssembly.Instance(module, obj);
  wasi.initialize({ exports: { memory } });
  instance.exports.wasi_thread_start(tid, arg);
}
EOF
    local bad=0 p t
    for p in $PROGRAMS; do
        for t in 4 1 3; do
            if OMP_NUM_THREADS=$t node --no-warnings "$host/run.mjs" "$p.wasm" $((MAX_MEMORY / 65536)) \
                > "$host/$p.$t.out" 2> "$host/$p.$t.err" && cmp -s "$host/$p.$t.out" "$p.expected"; then
                echo "$p (node, $t threads): same as $p.expected"
            else
                echo "$p (node, $t threads): DIFFERS from $p.expected" >&2
                cat "$host/$p.$t.err" >&2
                bad=1
            fi
        done
    done
    return $bad
}

if [ "${1:-}" = --check ]; then
    for p in $PROGRAMS; do [ -f "$p.wasm" ] && [ -f "$p.expected" ] || die "missing $p.wasm or $p.expected"; done
    # shellcheck disable=SC2046
    check_shape $(for p in $PROGRAMS; do echo "$p.wasm"; done)
    run_node_checks
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
run_node_checks
