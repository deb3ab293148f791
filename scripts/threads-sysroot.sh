#!/usr/bin/env bash
# Builds a wasi-libc sysroot for `--target=wasm32-wasip1-threads` (pthreads
# over the wasi-threads proposal: shared memory, atomics, the `wasi`
# `thread-spawn` import and the `wasi_thread_start` export), because Debian
# ships wasi-libc only for single-threaded targets.
#
# Usage: scripts/threads-sysroot.sh [OUT_DIR]      (default target/wasi-threads-sysroot)
#   env: THREADS_SYSROOT_CACHE  where the downloaded wheel is kept
#                               (default ${XDG_CACHE_HOME:-~/.cache}/mvvm-threads-sysroot)
#        JOBS                   parallel compile jobs (default: nproc)
#
# From what:
#   - Debian's clang-19, lld-19, llvm-19 (llvm-ar) and libclang-rt-19-dev-wasm32
#     (compiler-rt builtins), and unzip, installed with apt by name if missing;
#   - the C sources of wasi-libc that the `ziglang` wheel on PyPI ships under
#     lib/libc/wasi (fetched with `pip download --no-deps ziglang==0.13.0`,
#     checked against a pinned SHA-256): the WASI "bottom half", musl as
#     modified by wasi-libc (the "top half", with its `_REENTRANT` code
#     paths), emmalloc, crt1-command.c, and the headers zig installed from
#     wasi-libc (lib/libc/include/wasm-wasi-musl; only the bottom half's
#     public headers are taken from there, the rest is installed from the
#     sources as wasi-libc's Makefile does). 0.13.0 is the last release whose
#     wheel carries the whole wasi-libc tree; later ones share musl files with
#     zig's own musl or replace them with Zig code;
#   - musl's upstream pthread sources, which the same wheel ships under
#     lib/libc/musl/src/thread and src/stdio (no ziglang wheel carries
#     wasi-libc's threaded files: zig builds wasi-libc single-threaded and
#     drops them, including wasi_thread_start.s and wasi-libc's
#     pthread_create.c);
#   - the WASI thread layer written below ("overlay"), which replaces those
#     dropped files: thread creation through `thread-spawn`,
#     `wasi_thread_start` (asm), futex waits on memory.atomic.wait32/notify,
#     the main thread's descriptor, pthread_join freeing the thread's memory,
#     and an emulation of the futex system calls upstream musl makes
#     (FUTEX_WAIT/WAKE on wasm atomics, REQUEUE as a wake, others ENOSYS).
#     Same ABI as wasi-libc: `wasi` `thread-spawn` (i32) -> i32, exported
#     `wasi_thread_start(tid, arg)`, shared memory imported as env.memory.
#
# What it produces (OUT_DIR):
#   include/wasm32-wasip1-threads/  headers (bits/alltypes.h generated as
#                                   musl's mkalltypes.sed does), pthread.h
#   lib/wasm32-wasip1-threads/      libc.a, crt1.o (= crt1-command.o),
#                                   crt1-command.o, crt1-reactor.o, the
#                                   libwasi-emulated-{mman,signal,getpid,
#                                   process-clocks}.a libraries, and empty
#                                   libm/libpthread/... archives
#   resource-dir/                   a clang resource dir: clang-19's headers
#                                   (linked) and the wasm builtins archive
#                                   where clang-19 looks for it on this target
#                                   (Debian installs it under lib/wasi/, which
#                                   clang-19 does not search for wasip1-threads)
# The same sources give the same libc.a, byte for byte.
#
# Compile and link a program (test/threads/build.sh does):
#   clang-19 --target=wasm32-wasip1-threads --sysroot=OUT -resource-dir=OUT/resource-dir \
#     -pthread -O2 -Wl,--import-memory,--export-memory,--max-memory=268435456 prog.c
# (-pthread makes wasm-ld use --shared-memory; wasi-threads wants the memory
# imported, exported, shared and with a maximum.)
#
# Known limits of the overlay (test/threads/README.md has them too):
# pthread_exit() called inside a thread (rather than returning from its start
# routine) parks that thread for good, wasi-threads having no way to end a
# thread from inside its call stack; pthread_cancel() returns ENOSYS; no
# guard pages; pthread_attr_setstack() is refused (ENOTSUP); priority
# inheritance mutexes are refused (ENOSYS); malloc is emmalloc behind its
# spin lock (wasi-libc itself uses dlmalloc); printf has full long double
# support in libc.a (wasi-libc moves it to libc-printscan-long-double.a).
#
# How long: the first run downloads ~80 MB (cached afterwards); compiling
# ~870 files takes about 40 s on 2 idle cores (70 s on a loaded machine).
set -euo pipefail

ZIG_VERSION=0.13.0
ZIG_WHEEL=ziglang-0.13.0-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl
ZIG_WHEEL_SHA256=3ce0c9f16547e5d61b32e0d226926e9a2552ef4b91fccf7ab5ea1a623a77824b
TRIPLE=wasm32-wasip1-threads
LLVM=19

die() { echo "threads-sysroot: error: $*" >&2; exit 1; }
note() { echo "threads-sysroot: $*" >&2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/target/wasi-threads-sysroot}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
CACHE=${THREADS_SYSROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mvvm-threads-sysroot}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
START=$(date +%s)

# ---- tools -------------------------------------------------------------
CC=clang-$LLVM
AR=llvm-ar-$LLVM
BUILTINS=/usr/lib/llvm-$LLVM/lib/clang/$LLVM/lib/wasi/libclang_rt.builtins-wasm32.a
need_apt=()
command -v "$CC" >/dev/null || need_apt+=(clang-$LLVM)
command -v wasm-ld-$LLVM >/dev/null || need_apt+=(lld-$LLVM)
command -v "$AR" >/dev/null || need_apt+=(llvm-$LLVM)
command -v unzip >/dev/null || need_apt+=(unzip)
[ -f "$BUILTINS" ] || need_apt+=(libclang-rt-$LLVM-dev-wasm32)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        note "installing ${need_apt[*]} with apt-get"
        apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null \
            || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null; } \
            || die "apt-get install ${need_apt[*]} failed"
    else
        die "missing ${need_apt[*]}: install them (apt-get install ${need_apt[*]})"
    fi
fi
command -v pip >/dev/null || command -v pip3 >/dev/null || die "pip is needed to fetch the ziglang wheel"
PIP=$(command -v pip || command -v pip3)

# ---- sources: the ziglang wheel ----------------------------------------
mkdir -p "$CACHE"
WHEEL=$CACHE/$ZIG_WHEEL
if [ ! -f "$WHEEL" ]; then
    note "fetching ziglang==$ZIG_VERSION with pip (about 80 MB)"
    # --platform: the wheel's lib/ tree is the same on every platform; naming
    # one makes the download independent of the host.
    "$PIP" download --no-deps --only-binary=:all: \
        --platform manylinux_2_12_x86_64 \
        -d "$CACHE" "ziglang==$ZIG_VERSION" >&2 || die "pip download ziglang==$ZIG_VERSION failed"
    [ -f "$WHEEL" ] || die "pip did not produce $ZIG_WHEEL in $CACHE"
fi
got=$(sha256sum "$WHEEL" | cut -d' ' -f1)
[ "$got" = "$ZIG_WHEEL_SHA256" ] || die "$WHEEL: sha256 $got, expected $ZIG_WHEEL_SHA256 (delete it to fetch again)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/threads-sysroot.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
note "unpacking wasi-libc and musl sources"
unzip -q "$WHEEL" 'ziglang/lib/libc/wasi/*' 'ziglang/lib/libc/musl/src/thread/*' \
    'ziglang/lib/libc/musl/src/stdio/*' 'ziglang/lib/libc/include/wasm-wasi-musl/*' -d "$WORK" \
    || die "unzip of $WHEEL failed"
L=$WORK/ziglang/lib/libc
W=$L/wasi
TOP=$W/libc-top-half/musl
BOT=$W/libc-bottom-half
UPSTREAM=$L/musl/src

must() { local m; for m in "$@"; do [ -e "$m" ] || die "expected file missing from the ziglang $ZIG_VERSION wheel: ${m#"$WORK"/}"; done; }
must "$TOP/include/alltypes.h.in" "$TOP/arch/wasm32/bits/alltypes.h.in" "$TOP/src/internal/pthread_impl.h" \
    "$TOP/arch/wasm32/pthread_arch.h" "$BOT/crt/crt1-command.c" "$BOT/crt/crt1-reactor.c" \
    "$BOT/sources/__wasilibc_real.c" "$W/emmalloc/emmalloc.c" "$L/include/wasm-wasi-musl/wasi/api.h"
grep -q 'thread-spawn' "$BOT/sources/__wasilibc_real.c" \
    || die "__wasilibc_real.c in the wheel has no thread-spawn import"

# ---- headers, as wasi-libc's Makefile installs them --------------------
rm -rf "$OUT"
INC=$OUT/include/$TRIPLE
LIB=$OUT/lib/$TRIPLE
mkdir -p "$INC/bits" "$LIB"
# The bottom half's public headers (wasi/api.h, __header_*.h, ...) are not
# in the wheel's source tree; zig keeps the installed copies. They are the
# files whose names start with "__" and the wasi/ directory.
cp "$L"/include/wasm-wasi-musl/__*.h "$INC/"
cp -r "$L/include/wasm-wasi-musl/wasi" "$INC/"
# bits/alltypes.h, generated like musl's tools/mkalltypes.sed does.
sed -e '/^TYPEDEF/s/TYPEDEF \(.*\) \([^ ]*\);$/#if defined(__NEED_\2) \&\& !defined(__DEFINED_\2)\
typedef \1 \2;\
#define __DEFINED_\2\
#endif\
/' -e '/^STRUCT/s/STRUCT * \([^ ]*\) \(.*\);$/#if defined(__NEED_struct_\1) \&\& !defined(__DEFINED_struct_\1)\
struct \1 \2;\
#define __DEFINED_struct_\1\
#endif\
/' -e '/^UNION/s/UNION * \([^ ]*\) \(.*\);$/#if defined(__NEED_union_\1) \&\& !defined(__DEFINED_union_\1)\
union \1 \2;\
#define __DEFINED_union_\1\
#endif\
/' "$TOP/arch/wasm32/bits/alltypes.h.in" "$TOP/include/alltypes.h.in" > "$INC/bits/alltypes.h"
cp -r "$TOP/include/." "$INC/"
cp "$TOP"/arch/generic/bits/*.h "$INC/bits/"
cp "$TOP"/arch/wasm32/bits/*.h "$INC/bits/"
# Not headers, or replaced by the compiler's / WASI's own (the Makefile's
# MUSL_OMIT_HEADERS; the threaded model keeps pthread.h and aio.h).
for h in alltypes.h.in bits/alltypes.h.in bits/syscall.h.in stdarg.h stddef.h bits/errno.h \
    sys/procfs.h sys/user.h sys/kd.h sys/vt.h sys/soundcard.h sys/sem.h sys/shm.h sys/msg.h \
    sys/ipc.h sys/ptrace.h sys/statfs.h bits/kd.h bits/vt.h bits/soundcard.h bits/sem.h \
    bits/shm.h bits/msg.h bits/ipc.h bits/ptrace.h bits/statfs.h sys/vfs.h sys/statvfs.h \
    syslog.h sys/syslog.h wait.h sys/wait.h ucontext.h sys/ucontext.h paths.h utmp.h utmpx.h \
    lastlog.h sys/acct.h sys/cachectl.h sys/epoll.h sys/reboot.h sys/swap.h sys/sendfile.h \
    sys/inotify.h sys/quota.h sys/klog.h sys/fsuid.h sys/io.h sys/prctl.h sys/mtio.h \
    sys/mount.h sys/fanotify.h sys/personality.h elf.h link.h bits/link.h scsi/scsi.h \
    scsi/scsi_ioctl.h scsi/sg.h sys/auxv.h pwd.h shadow.h grp.h mntent.h netdb.h resolv.h \
    pty.h dlfcn.h setjmp.h ulimit.h sys/xattr.h wordexp.h spawn.h sys/membarrier.h \
    sys/signalfd.h termios.h sys/termios.h bits/termios.h net/if.h net/if_arp.h \
    net/ethernet.h net/route.h netinet/if_ether.h netinet/ether.h sys/timerfd.h libintl.h \
    sys/sysmacros.h; do
    rm -f "$INC/$h"
done
must "$INC/pthread.h" "$INC/stdio.h" "$INC/wasi/api.h" "$INC/bits/alltypes.h"

# ---- the WASI thread layer (overlay) -----------------------------------
OV=$WORK/overlay
mkdir -p "$OV"

# Forced into every upstream musl thread file: upstream calls raw Linux
# syscalls (futex, robust lists, scheduling) where wasi-libc's copy has
# WASI code. They all go to __mvvm_syscall, which does the futex operations
# with wasm atomics and answers ENOSYS for the rest.
cat > "$OV/mvvm_thread_compat.h" <<'EOF'
#ifndef MVVM_THREAD_COMPAT_H
#define MVVM_THREAD_COMPAT_H
#define _GNU_SOURCE
#define _WASI_EMULATED_MMAN
#include <sys/mman.h>
#include <time.h>
#include "pthread_impl.h"

#define SYS_futex 1
#define SYS_futex_time64 2
#define SYS_set_robust_list 3
#define SYS_get_robust_list 4
#define SYS_sched_yield 5
#define SYS_sched_setscheduler 6
#define SYS_sched_getscheduler 7
#define SYS_sched_setparam 8
#define SYS_sched_getparam 9
#define SYS_gettid 10
#define SYS_tkill 11
#define SYS_exit 12
#define SYS_set_tid_address 13
#define SYS_rt_sigprocmask 14
#define SYS_membarrier 15
hidden long __mvvm_syscall(long nr, ...);
#define __syscall(...) __mvvm_syscall(__VA_ARGS__)
#define __syscall_cp(...) __mvvm_syscall(__VA_ARGS__)

/* Declared by upstream's pthread_impl.h, not by wasi-libc's. */
hidden void __vm_wait(void);
hidden void __vm_lock(void);
hidden void __vm_unlock(void);
hidden void __block_all_sigs(void *);
hidden void __block_app_sigs(void *);
hidden void __restore_sigs(void *);
_Noreturn void __pthread_exit(void *);

/* Thread memory comes from malloc; a joiner frees it (pthread_join). */
hidden void __mvvm_thread_block_free(void *);
#define __munmap(p, n) (__mvvm_thread_block_free(p), 0)
/* Only reached for a thread without a known stack, which never happens:
 * the main thread's stack is set by __wasi_init_tp. */
#define mremap(...) MAP_FAILED

/* Condition variables keep their clock as an int (musl's encoding, see
 * pthread_condattr_setclock.c here: 0 realtime, 1 monotonic); WASI's
 * clockid_t is a pointer. */
#define __MVVM_CLOCK(c) _Generic((c), clockid_t: (c), default: ((c) ? CLOCK_MONOTONIC : CLOCK_REALTIME))
#define __timedwait_cp(a, v, c, t, p) (__timedwait_cp)(a, v, __MVVM_CLOCK(c), t, p)
#define __timedwait(a, v, c, t, p) (__timedwait)(a, v, __MVVM_CLOCK(c), t, p)
#endif
EOF

# wasi_thread_start: the host calls it on a new thread with the thread id
# and the pointer given to thread-spawn. Before any C runs, the thread's
# shadow stack pointer and TLS base must be set: C cannot set globals.
cat > "$OV/wasi_thread_start.s" <<'EOF'
	.text

	.export_name	wasi_thread_start, wasi_thread_start

	.globaltype	__stack_pointer, i32
	.globaltype	__tls_base, i32
	.functype	__mvvm_thread_start_C (i32, i32) -> ()

	.hidden	wasi_thread_start
	.globl	wasi_thread_start
	.type	wasi_thread_start,@function
wasi_thread_start:
	.functype	wasi_thread_start (i32, i32) -> ()
	# struct mvvm_start_args: +0 stack top, +4 TLS block, +8 done flag
	local.get	1
	i32.load	0
	global.set	__stack_pointer
	local.get	1
	i32.load	4
	global.set	__tls_base
	local.get	0
	local.get	1
	call	__mvvm_thread_start_C
	# Last touch of the thread's memory: from here on the joiner may free
	# the block holding this thread's stack, TLS and arguments.
	local.get	1
	i32.const	1
	i32.atomic.store	8
	local.get	1
	i32.const	8
	i32.add
	i32.const	2147483647	# every waiter (INT_MAX, as musl's __wake)
	memory.atomic.notify	0
	drop
	end_function

	.hidden	__mvvm_set_tls_base
	.globl	__mvvm_set_tls_base
	.type	__mvvm_set_tls_base,@function
__mvvm_set_tls_base:
	.functype	__mvvm_set_tls_base (i32) -> ()
	local.get	0
	global.set	__tls_base
	end_function
EOF

# The main thread's descriptor (crt1 calls __wasi_init_tp before
# constructors), the futex wait, and the syscall emulation.
cat > "$OV/mvvm_thread_base.c" <<'EOF'
#include <stdarg.h>
#include <sched.h>

/* pthread_arch.h: __pthread_self() is the address of this TLS variable. */
_Thread_local struct pthread __wasilibc_pthread_self;

/* Spawned threads get ids 1..0x1FFFFFFF from the host; the main thread
 * gets one outside that range that still fits musl's 30-bit owner fields. */
#define MAIN_TID 0x20000000

extern unsigned char __stack_low, __stack_high;

void __wasi_init_tp(void)
{
	struct pthread *td = &__wasilibc_pthread_self;
	td->self = td;
	td->tid = MAIN_TID;
	td->detach_state = DT_JOINABLE;
	td->locale = &libc.global_locale;
	td->robust_list.head = &td->robust_list.head;
	td->stack = &__stack_high;
	td->stack_size = &__stack_high - &__stack_low;
	td->next = td->prev = td;
}

int __wasilibc_futex_wait(volatile void *addr, int op, int val, int64_t max_wait_ns)
{
	(void)op;
	if (((uintptr_t)addr & 3) != 0) return -EINVAL;
	switch (__builtin_wasm_memory_atomic_wait32((int *)addr, val, max_wait_ns)) {
	case 0: return 0;
	case 1: return -EAGAIN;
	case 2: return -ETIMEDOUT;
	default: return -EINVAL;
	}
}

long __mvvm_syscall(long nr, ...)
{
	va_list ap;
	va_start(ap, nr);
	long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_sched_yield) return sched_yield();
	if (nr != SYS_futex) return -ENOSYS;
	volatile int *addr = (volatile int *)a;
	switch (b & ~(FUTEX_PRIVATE|FUTEX_CLOCK_REALTIME)) {
	case FUTEX_WAIT:
		/* c: expected value; upstream thread code never passes a
		 * timeout here (timed waits go through __timedwait). */
		return __wasilibc_futex_wait(addr, FUTEX_WAIT, (int)c, -1);
	case FUTEX_WAKE:
		__builtin_wasm_memory_atomic_notify((int *)addr, c < 0 ? INT_MAX : (unsigned)c);
		return 0;
	case FUTEX_REQUEUE:
	case FUTEX_CMP_REQUEUE:
		/* Moving waiters to another address is an optimisation:
		 * waking them instead is allowed, they re-check and wait
		 * again on the right word. */
		__builtin_wasm_memory_atomic_notify((int *)addr, INT_MAX);
		return 0;
	default:
		return -ENOSYS;
	}
}

/* WASI has no signals: nothing to block. */
void __block_all_sigs(void *set) { (void)set; }
void __block_app_sigs(void *set) { (void)set; }
void __restore_sigs(void *set) { (void)set; }
EOF

cat > "$OV/__wait.c" <<'EOF'
#include "pthread_impl.h"

void __wait(volatile int *addr, volatile int *waiters, int val, int priv)
{
	int spins = 100;
	(void)priv;
	while (spins-- && (!waiters || !*waiters)) {
		if (*addr == val) a_spin();
		else return;
	}
	if (waiters) a_inc(waiters);
	while (*addr == val)
		__wasilibc_futex_wait(addr, FUTEX_WAIT, val, -1);
	if (waiters) a_dec(waiters);
}
EOF

cat > "$OV/__timedwait.c" <<'EOF'
#include <pthread.h>
#include <time.h>
#include <errno.h>
#include "pthread_impl.h"

/* Cancellation is not supported (pthread_cancel answers ENOSYS), so the
 * cancellable and plain variants are the same wait. */
int __timedwait_cp(volatile int *addr, int val, clockid_t clk, const struct timespec *at, int priv)
{
	int64_t ns = -1;
	(void)priv;
	if (at) {
		struct timespec now;
		if (at->tv_nsec >= 1000000000UL || at->tv_nsec < 0) return EINVAL;
		if (clock_gettime(clk, &now)) return EINVAL;
		int64_t s = (int64_t)at->tv_sec - now.tv_sec;
		int64_t n = (int64_t)at->tv_nsec - now.tv_nsec;
		if (n < 0) { s--; n += 1000000000; }
		if (s < 0) return ETIMEDOUT;
		ns = s > INT64_MAX / 1000000000 - 1 ? INT64_MAX : s * 1000000000 + n;
	}
	int r = -__wasilibc_futex_wait(addr, FUTEX_WAIT, val, ns);
	if (r != EINTR && r != ETIMEDOUT && r != ECANCELED) r = 0;
	return r;
}

int __timedwait(volatile int *addr, int val, clockid_t clk, const struct timespec *at, int priv)
{
	return __timedwait_cp(addr, val, clk, at, priv);
}
EOF

cat > "$OV/pthread_cancel.c" <<'EOF'
#include "pthread_impl.h"

/* Cancellation would need signals or unwinding; neither exists here. */
int pthread_cancel(pthread_t t)
{
	(void)t;
	return ENOSYS;
}

void __testcancel(void)
{
}
EOF

cat > "$OV/pthread_condattr_setclock.c" <<'EOF'
#include "pthread_impl.h"

/* musl keeps the clock id in the attribute's low bits; WASI's clock ids
 * are pointers, so store 0 for CLOCK_REALTIME and 1 for CLOCK_MONOTONIC
 * (the compat header maps them back for __timedwait). */
int pthread_condattr_setclock(pthread_condattr_t *a, clockid_t clk)
{
	unsigned v;
	if (clk == CLOCK_REALTIME) v = 0;
	else if (clk == CLOCK_MONOTONIC) v = 1;
	else return EINVAL;
	a->__attr &= 0x80000000;
	a->__attr |= v;
	return 0;
}
EOF

cat > "$OV/pthread_attr_get.c" <<'EOF'
#include "pthread_impl.h"

/* musl's getters, less pthread_attr_getschedparam (WASI has no struct
 * sched_param) and with the clock encoding of pthread_condattr_setclock.c. */
int pthread_attr_getdetachstate(const pthread_attr_t *a, int *state)
{
	*state = a->_a_detach;
	return 0;
}

int pthread_attr_getguardsize(const pthread_attr_t *restrict a, size_t *restrict size)
{
	*size = a->_a_guardsize;
	return 0;
}

int pthread_attr_getinheritsched(const pthread_attr_t *restrict a, int *restrict inherit)
{
	*inherit = a->_a_sched;
	return 0;
}

int pthread_attr_getschedpolicy(const pthread_attr_t *restrict a, int *restrict policy)
{
	*policy = a->_a_policy;
	return 0;
}

int pthread_attr_getscope(const pthread_attr_t *restrict a, int *restrict scope)
{
	(void)a;
	*scope = PTHREAD_SCOPE_SYSTEM;
	return 0;
}

int pthread_attr_getstack(const pthread_attr_t *restrict a, void **restrict addr, size_t *restrict size)
{
	if (!a->_a_stackaddr) return EINVAL;
	*size = a->_a_stacksize;
	*addr = (void *)(a->_a_stackaddr - *size);
	return 0;
}

int pthread_attr_getstacksize(const pthread_attr_t *restrict a, size_t *restrict size)
{
	*size = a->_a_stacksize;
	return 0;
}

int pthread_barrierattr_getpshared(const pthread_barrierattr_t *restrict a, int *restrict pshared)
{
	*pshared = !!a->__attr;
	return 0;
}

int pthread_condattr_getclock(const pthread_condattr_t *restrict a, clockid_t *restrict clk)
{
	*clk = (a->__attr & 0x7fffffff) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
	return 0;
}

int pthread_condattr_getpshared(const pthread_condattr_t *restrict a, int *restrict pshared)
{
	*pshared = a->__attr >> 31;
	return 0;
}

int pthread_mutexattr_getprotocol(const pthread_mutexattr_t *restrict a, int *restrict protocol)
{
	*protocol = a->__attr / 8U % 2;
	return 0;
}

int pthread_mutexattr_getpshared(const pthread_mutexattr_t *restrict a, int *restrict pshared)
{
	*pshared = a->__attr / 128U % 2;
	return 0;
}

int pthread_mutexattr_getrobust(const pthread_mutexattr_t *restrict a, int *restrict robust)
{
	*robust = a->__attr / 4U % 2;
	return 0;
}

int pthread_mutexattr_gettype(const pthread_mutexattr_t *restrict a, int *restrict type)
{
	*type = a->__attr & 3;
	return 0;
}

int pthread_rwlockattr_getpshared(const pthread_rwlockattr_t *restrict a, int *restrict pshared)
{
	*pshared = a->__attr[0];
	return 0;
}
EOF

cat > "$OV/pthread_getattr_np.c" <<'EOF'
#define _GNU_SOURCE
#include "pthread_impl.h"

/* Every thread's stack is known (the main thread's from the linker's
 * __stack_low/__stack_high), so musl's probing of the stack with mremap
 * is not needed. */
int pthread_getattr_np(pthread_t t, pthread_attr_t *a)
{
	*a = (pthread_attr_t){0};
	a->_a_detach = t->detach_state >= DT_DETACHED;
	a->_a_guardsize = t->guard_size;
	a->_a_stackaddr = (uintptr_t)t->stack;
	a->_a_stacksize = t->stack_size;
	return 0;
}
EOF

cat > "$OV/pthread_create.c" <<'EOF'
/* Thread creation and exit over wasi-threads. The structure follows musl's
 * src/thread/pthread_create.c (MIT); the kernel parts (clone, mmap,
 * set_tid_address, unmapself) are replaced by malloc, thread-spawn and a
 * done flag set by wasi_thread_start after its last use of the thread's
 * memory. */
#define _GNU_SOURCE
#include "pthread_impl.h"
#include "stdio_impl.h"
#include "libc.h"
#include "lock.h"
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <wasi/api.h>

static void dummy_0(void)
{
}
weak_alias(dummy_0, __acquire_ptc);
weak_alias(dummy_0, __release_ptc);
weak_alias(dummy_0, __pthread_tsd_run_dtors);
weak_alias(dummy_0, __do_orphaned_stdio_locks);
weak_alias(dummy_0, __dl_thread_cleanup);

volatile int __thread_list_lock;
static int tl_lock_count;
static int tl_lock_waiters;

void __tl_lock(void)
{
	int tid = __pthread_self()->tid;
	int val = __thread_list_lock;
	if (val == tid) {
		tl_lock_count++;
		return;
	}
	while ((val = a_cas(&__thread_list_lock, 0, tid)))
		__wait(&__thread_list_lock, &tl_lock_waiters, val, 0);
}

void __tl_unlock(void)
{
	if (tl_lock_count) {
		tl_lock_count--;
		return;
	}
	a_store(&__thread_list_lock, 0);
	if (tl_lock_waiters) __wake(&__thread_list_lock, 1, 0);
}

void __tl_sync(pthread_t td)
{
	(void)td;
	a_barrier();
	int val = __thread_list_lock;
	if (!val) return;
	__wait(&__thread_list_lock, &tl_lock_waiters, val, 0);
	if (tl_lock_waiters) __wake(&__thread_list_lock, 1, 0);
}

/* One malloc block per thread: this header, then the stack, the TLS block
 * and the TSD array. wasi_thread_start reads the first two fields and sets
 * `done` when the thread no longer touches the block. */
struct mvvm_start_args {
	void *stack_top;
	void *tls_base;
	volatile int done;
	int c11;
	void *(*start_func)(void *);
	void *start_arg;
	struct pthread *thread;
	struct mvvm_start_args *next_dead;
};

void __mvvm_set_tls_base(void *);
extern void __wasm_init_tls(void *);

/* Blocks of detached threads, freed once their thread is done. */
static struct mvvm_start_args *dead_list;
static volatile int dead_lock[1];

static void reap_dead(void)
{
	LOCK(dead_lock);
	struct mvvm_start_args **pp = &dead_list, *a;
	while ((a = *pp)) {
		if (__atomic_load_n(&a->done, __ATOMIC_SEQ_CST)) {
			*pp = a->next_dead;
			free(a);
		} else {
			pp = &a->next_dead;
		}
	}
	UNLOCK(dead_lock);
}

void __mvvm_thread_block_free(void *block)
{
	struct mvvm_start_args *a = block;
	while (!__atomic_load_n(&a->done, __ATOMIC_SEQ_CST))
		__builtin_wasm_memory_atomic_wait32((int *)&a->done, 0, -1);
	free(a);
}

/* Returns normally: a wasi thread ends when wasi_thread_start returns. */
static void exit_thread(void *result)
{
	pthread_t self = __pthread_self();

	self->canceldisable = 1;
	self->cancelasync = 0;
	self->result = result;

	while (self->cancelbuf) {
		void (*f)(void *) = self->cancelbuf->__f;
		void *x = self->cancelbuf->__x;
		self->cancelbuf = self->cancelbuf->__next;
		f(x);
	}

	__pthread_tsd_run_dtors();

	int state = a_cas(&self->detach_state, DT_JOINABLE, DT_EXITING);

	LOCK(self->killlock);
	__tl_lock();
	if (self->next == self) {
		/* Last thread: the process ends, running atexit handlers. */
		__tl_unlock();
		UNLOCK(self->killlock);
		self->detach_state = state;
		exit(0);
	}
	self->tid = 0;
	UNLOCK(self->killlock);

	__do_orphaned_stdio_locks();
	__dl_thread_cleanup();

	if (!--libc.threads_minus_1) libc.need_locks = -1;
	self->next->prev = self->prev;
	self->prev->next = self->next;
	self->prev = self->next = self;

	if (state == DT_DETACHED && self->map_base) {
		struct mvvm_start_args *a = (void *)self->map_base;
		LOCK(dead_lock);
		a->next_dead = dead_list;
		dead_list = a;
		UNLOCK(dead_lock);
	}
	__tl_unlock();

	/* Wake any joiner. */
	a_store(&self->detach_state, DT_EXITED);
	__wake(&self->detach_state, 1, 1);
}

static volatile int parked;

_Noreturn void __pthread_exit(void *result)
{
	struct mvvm_start_args *a = (void *)__pthread_self()->map_base;
	exit_thread(result);
	/* wasi-threads has no way to end a thread from inside its call
	 * stack: the thread sleeps for good, on a static word. It does not
	 * touch its own block again, so release it to the joiner (or to
	 * reap_dead) as wasi_thread_start would. The main thread has no
	 * block. */
	if (a) {
		__atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
		__builtin_wasm_memory_atomic_notify((int *)&a->done, INT_MAX);
	}
	for (;;) __builtin_wasm_memory_atomic_wait32((int *)&parked, 0, -1);
}

void __mvvm_thread_start_C(int tid, struct mvvm_start_args *args)
{
	struct pthread *self = args->thread;
	a_store(&self->tid, tid);
	void *r;
	if (args->c11) {
		int (*start)(void *) = (int (*)(void *))args->start_func;
		r = (void *)(uintptr_t)start(args->start_arg);
	} else {
		r = args->start_func(args->start_arg);
	}
	exit_thread(r);
}

void __do_cleanup_push(struct __ptcb *cb)
{
	struct pthread *self = __pthread_self();
	cb->__next = self->cancelbuf;
	self->cancelbuf = cb;
}

void __do_cleanup_pop(struct __ptcb *cb)
{
	__pthread_self()->cancelbuf = cb->__next;
}

/* pthread_key_create.c overrides these */
static volatile size_t dummy = 0;
weak_alias(dummy, __pthread_tsd_size);
static void *dummy_tsd[1] = { 0 };
weak_alias(dummy_tsd, __pthread_tsd_main);

static FILE *volatile dummy_file = 0;
weak_alias(dummy_file, __stdin_used);
weak_alias(dummy_file, __stdout_used);
weak_alias(dummy_file, __stderr_used);

static void init_file_lock(FILE *f)
{
	if (f && f->lock < 0) f->lock = 0;
}

#define ALIGN_UP(x, a) (((x) + (a) - 1) & -(uintptr_t)(a))

int __pthread_create(pthread_t *restrict res, const pthread_attr_t *restrict attrp,
	void *(*entry)(void *), void *restrict arg)
{
	int c11 = (attrp == __ATTRP_C11_THREAD);
	struct pthread *self, *new;
	pthread_attr_t attr = { 0 };

	self = __pthread_self();
	if (!libc.threaded) {
		for (FILE *f = *__ofl_lock(); f; f = f->next)
			init_file_lock(f);
		__ofl_unlock();
		init_file_lock(__stdin_used);
		init_file_lock(__stdout_used);
		init_file_lock(__stderr_used);
		self->tsd = (void **)__pthread_tsd_main;
		libc.threaded = 1;
	}
	reap_dead();
	if (attrp && !c11) attr = *attrp;

	__acquire_ptc();
	if (!attrp || c11) {
		attr._a_stacksize = __default_stacksize;
		attr._a_guardsize = __default_guardsize;
	}
	if (attr._a_stackaddr) {
		/* The stack would have to live in linear memory the caller
		 * owns; supporting that is not worth it here. */
		__release_ptc();
		return ENOTSUP;
	}

	size_t tls_size = __builtin_wasm_tls_size();
	size_t tls_align = __builtin_wasm_tls_align();
	if (tls_align < 16) tls_align = 16;
	size_t stack_size = ALIGN_UP(attr._a_stacksize, 16);
	size_t off_stack = ALIGN_UP(sizeof(struct mvvm_start_args), 16);
	size_t off_tls = ALIGN_UP(off_stack + stack_size, tls_align);
	size_t off_tsd = ALIGN_UP(off_tls + tls_size, sizeof(void *));
	size_t total = off_tsd + __pthread_tsd_size + tls_align;
	unsigned char *map = malloc(total);
	if (!map) {
		__release_ptc();
		return EAGAIN;
	}
	/* malloc's alignment may be below tls_align: shift inside the block. */
	unsigned char *base = map + (ALIGN_UP((uintptr_t)map + off_tls, tls_align) - ((uintptr_t)map + off_tls));
	struct mvvm_start_args *args = (void *)map;
	unsigned char *stack_low = base + off_stack;
	unsigned char *tls = base + off_tls;
	void **tsd = (void **)(base + off_tsd);
	memset(tsd, 0, __pthread_tsd_size);

	/* Lay out the new thread's TLS block from the module's TLS image.
	 * __wasm_init_tls also points this thread's __tls_base at it, so put
	 * ours back right away. */
	void *own_tls = __builtin_wasm_tls_base();
	__wasm_init_tls(tls);
	__mvvm_set_tls_base(own_tls);
	new = (void *)(tls + ((uintptr_t)self - (uintptr_t)own_tls));

	new->map_base = map;
	new->map_size = total;
	new->stack = stack_low + stack_size;
	new->stack_size = stack_size;
	new->guard_size = 0;
	new->self = new;
	new->tsd = tsd;
	new->locale = &libc.global_locale;
	new->detach_state = attr._a_detach ? DT_DETACHED : DT_JOINABLE;
	new->robust_list.head = &new->robust_list.head;
	new->canary = self->canary;

	args->stack_top = stack_low + stack_size;
	args->tls_base = tls;
	args->done = 0;
	args->c11 = c11;
	args->start_func = entry;
	args->start_arg = arg;
	args->thread = new;
	args->next_dead = 0;

	__tl_lock();
	if (!libc.threads_minus_1++) libc.need_locks = 1;
	int ret = __wasi_thread_spawn(args);
	if (ret >= 0) {
		a_store(&new->tid, ret);
		new->next = self->next;
		new->prev = self;
		new->next->prev = new;
		new->prev->next = new;
	} else {
		if (!--libc.threads_minus_1) libc.need_locks = 0;
	}
	__tl_unlock();
	__release_ptc();

	if (ret < 0) {
		free(map);
		return EAGAIN;
	}
	*res = new;
	return 0;
}

weak_alias(__pthread_exit, pthread_exit);
weak_alias(__pthread_create, pthread_create);
EOF

# ---- source lists --------------------------------------------------------
# libc-bottom-half: every C file of cloudlibc and sources/, chdir.c last
# (the Makefile's order, for lld's weak-reference handling).
: > "$WORK/bottom.list"
find "$BOT/cloudlibc/src" "$BOT/sources" -name '*.c' ! -name chdir.c | sort >> "$WORK/bottom.list"
echo "$BOT/sources/chdir.c" > "$WORK/bottom-last.list"
# libc-top-half: zig ships exactly the musl files wasi-libc compiles for
# the single-threaded model, plus a few it keeps for other libraries.
find "$TOP/src" -name '*.c' | sort \
    | grep -v -e '/signal/psignal\.c$' -e '/string/strsignal\.c$' > "$WORK/top.list"
find "$W/libc-top-half/sources" -name '*.c' | sort >> "$WORK/top.list"
# The threaded model's additions (wasi-libc's THREAD_MODEL=posix list):
# musl upstream files, compiled against wasi-libc's internal headers.
THREAD_UPSTREAM="__lock.c vmlock.c default_attr.c lock_ptc.c
 pthread_attr_destroy.c pthread_attr_init.c pthread_attr_setdetachstate.c
 pthread_attr_setguardsize.c pthread_attr_setinheritsched.c
 pthread_attr_setschedpolicy.c pthread_attr_setscope.c pthread_attr_setstack.c pthread_attr_setstacksize.c
 pthread_barrier_destroy.c pthread_barrier_init.c pthread_barrier_wait.c
 pthread_barrierattr_destroy.c pthread_barrierattr_init.c pthread_barrierattr_setpshared.c
 pthread_cleanup_push.c
 pthread_cond_broadcast.c pthread_cond_destroy.c pthread_cond_init.c pthread_cond_signal.c
 pthread_cond_timedwait.c pthread_cond_wait.c
 pthread_condattr_destroy.c pthread_condattr_init.c pthread_condattr_setpshared.c
 pthread_detach.c pthread_equal.c pthread_getspecific.c pthread_join.c
 pthread_key_create.c
 pthread_mutex_consistent.c pthread_mutex_destroy.c pthread_mutex_getprioceiling.c pthread_mutex_init.c
 pthread_mutex_lock.c pthread_mutex_setprioceiling.c pthread_mutex_timedlock.c pthread_mutex_trylock.c
 pthread_mutex_unlock.c
 pthread_mutexattr_destroy.c pthread_mutexattr_init.c pthread_mutexattr_setprotocol.c
 pthread_mutexattr_setpshared.c pthread_mutexattr_setrobust.c pthread_mutexattr_settype.c
 pthread_once.c
 pthread_rwlock_destroy.c pthread_rwlock_init.c pthread_rwlock_rdlock.c pthread_rwlock_timedrdlock.c
 pthread_rwlock_timedwrlock.c pthread_rwlock_tryrdlock.c pthread_rwlock_trywrlock.c
 pthread_rwlock_unlock.c pthread_rwlock_wrlock.c
 pthread_rwlockattr_destroy.c pthread_rwlockattr_init.c pthread_rwlockattr_setpshared.c
 pthread_self.c pthread_setattr_default_np.c pthread_setcancelstate.c pthread_setcanceltype.c
 pthread_setspecific.c pthread_spin_destroy.c pthread_spin_init.c pthread_spin_lock.c
 pthread_spin_trylock.c pthread_spin_unlock.c pthread_testcancel.c pthread_getconcurrency.c
 pthread_setconcurrency.c
 sem_destroy.c sem_getvalue.c sem_init.c sem_post.c sem_timedwait.c sem_trywait.c sem_wait.c
 call_once.c cnd_broadcast.c cnd_destroy.c cnd_init.c cnd_signal.c cnd_timedwait.c cnd_wait.c
 mtx_destroy.c mtx_init.c mtx_lock.c mtx_timedlock.c mtx_trylock.c mtx_unlock.c
 thrd_create.c thrd_exit.c thrd_join.c thrd_yield.c tss_create.c tss_delete.c tss_set.c"
: > "$WORK/thread.list"
for f in $THREAD_UPSTREAM; do
    must "$UPSTREAM/thread/$f"
    echo "$UPSTREAM/thread/$f" >> "$WORK/thread.list"
done
# stdio locking (the single-threaded model leaves these out).
for f in __lockfile.c flockfile.c ftrylockfile.c funlockfile.c; do
    must "$UPSTREAM/stdio/$f"
    echo "$UPSTREAM/stdio/$f" >> "$WORK/thread.list"
done

# ---- compile -------------------------------------------------------------
CFLAGS=(--target=$TRIPLE -O2 -DNDEBUG -fno-trapping-math -w
    -mthread-model posix -pthread -matomics -mbulk-memory
    -DBULK_MEMORY_THRESHOLD=32 -isystem "$INC")
BOT_I=(-I"$BOT/headers/private" -I"$BOT/cloudlibc/src/include" -I"$BOT/cloudlibc/src"
    -I"$TOP/src/include" -I"$TOP/src/internal")
TOP_I=(-I"$TOP/src/include" -I"$TOP/src/internal" -I"$TOP/arch/wasm32" -I"$TOP/arch/generic"
    -I"$W/libc-top-half/headers/private")
OBJ=$WORK/obj
mkdir -p "$OBJ"

# compile LIST KIND EXTRA...: one object per source, named after its path.
compile() {
    local list=$1; shift
    local args
    args=$(printf '%q ' "$@")
    # shellcheck disable=SC2016
    xargs -P "$JOBS" -I{} sh -c '
        src=$1; shift
        obj='"$OBJ"'/$(echo "$src" | sed -e "s|^'"$WORK"'/||" -e "s|/|_|g").o
        '"$CC"' "$@" -c "$src" -o "$obj" 2>"$obj.err" || { cat "$obj.err" >&2; echo "FAILED: $src" >&2; exit 255; }
        echo "$obj"
    ' _ {} $args < "$list" | sort
    # sort: parallel jobs finish in any order; the archive's member order
    # (and so the linked programs) must not depend on it.
    [ "${PIPESTATUS[0]}" = 0 ]
}

note "compiling $(($(wc -l < "$WORK/bottom.list") + 1)) bottom-half, $(wc -l < "$WORK/top.list") top-half, $(($(wc -l < "$WORK/thread.list") + 6)) thread files with $JOBS jobs"
: > "$WORK/libc.objs"
compile "$WORK/bottom.list" "${CFLAGS[@]}" "${BOT_I[@]}" >> "$WORK/libc.objs" || die "compiling the bottom half failed"
compile "$WORK/bottom-last.list" "${CFLAGS[@]}" "${BOT_I[@]}" >> "$WORK/libc.objs" || die "compiling the bottom half failed"
compile "$WORK/top.list" "${CFLAGS[@]}" "${TOP_I[@]}" >> "$WORK/libc.objs" || die "compiling the top half failed"
compile "$WORK/thread.list" "${CFLAGS[@]}" "${TOP_I[@]}" -include "$OV/mvvm_thread_compat.h" >> "$WORK/libc.objs" \
    || die "compiling musl's thread sources failed"
echo "$OV/mvvm_thread_base.c" > "$WORK/overlay-compat.list"
compile "$WORK/overlay-compat.list" "${CFLAGS[@]}" "${TOP_I[@]}" -include "$OV/mvvm_thread_compat.h" \
    -Wall -Werror >> "$WORK/libc.objs" || die "compiling the thread layer failed"
printf '%s\n' "$OV/__wait.c" "$OV/__timedwait.c" "$OV/pthread_cancel.c" "$OV/pthread_create.c" \
    "$OV/pthread_condattr_setclock.c" "$OV/pthread_attr_get.c" "$OV/pthread_getattr_np.c" > "$WORK/overlay.list"
compile "$WORK/overlay.list" "${CFLAGS[@]}" "${TOP_I[@]}" -Wall -Werror -Wno-unused-function \
    -Wno-ignored-attributes >> "$WORK/libc.objs" || die "compiling the thread layer failed"
"$CC" --target=$TRIPLE -matomics -mbulk-memory -c "$OV/wasi_thread_start.s" -o "$OBJ/wasi_thread_start.o" \
    || die "assembling wasi_thread_start.s failed"
echo "$OBJ/wasi_thread_start.o" >> "$WORK/libc.objs"
# emmalloc with its lock (the macro is its name for "threads enabled").
echo "$W/emmalloc/emmalloc.c" > "$WORK/malloc.list"
compile "$WORK/malloc.list" "${CFLAGS[@]}" -O3 -fno-strict-aliasing -D__EMSCRIPTEN_PTHREADS__ >> "$WORK/libc.objs" \
    || die "compiling emmalloc failed"

# The emulation libraries wasi-libc builds beside libc.a.
# emu NAME FILE... -- FLAG...
emu() {
    local name=$1; shift
    local list=$WORK/$name.list
    : > "$list"
    while [ "$1" != -- ]; do echo "$1" >> "$list"; shift; done
    shift
    compile "$list" "$@" >> "$WORK/$name.objs" || die "compiling lib$name.a failed"
}
emu wasi-emulated-mman $(find "$BOT/mman" -name '*.c' | sort) -- "${CFLAGS[@]}" "${BOT_I[@]}"
emu wasi-emulated-process-clocks $(find "$BOT/clocks" -name '*.c' | sort) -- "${CFLAGS[@]}" "${BOT_I[@]}"
emu wasi-emulated-getpid $(find "$BOT/getpid" -name '*.c' | sort) -- "${CFLAGS[@]}" "${BOT_I[@]}"
emu wasi-emulated-signal $(find "$BOT/signal" -name '*.c' | sort) -- "${CFLAGS[@]}"
emu wasi-emulated-signal "$TOP/src/signal/psignal.c" "$TOP/src/string/strsignal.c" -- \
    "${CFLAGS[@]}" "${TOP_I[@]}" -D_WASI_EMULATED_SIGNAL
for name in wasi-emulated-mman wasi-emulated-process-clocks wasi-emulated-getpid wasi-emulated-signal; do
    # shellcheck disable=SC2046
    "$AR" crs "$LIB/lib$name.a" $(cat "$WORK/$name.objs")
done

note "archiving libc.a ($(wc -l < "$WORK/libc.objs") objects)"
# shellcheck disable=SC2046
"$AR" crs "$LIB/libc.a" $(cat "$WORK/libc.objs")
for l in m rt pthread crypt util xnet resolv dl; do
    "$AR" crs "$LIB/lib$l.a"
done
"$CC" "${CFLAGS[@]}" "${BOT_I[@]}" -c "$BOT/crt/crt1-command.c" -o "$LIB/crt1-command.o"
"$CC" "${CFLAGS[@]}" "${BOT_I[@]}" -c "$BOT/crt/crt1-reactor.c" -o "$LIB/crt1-reactor.o"
cp "$LIB/crt1-command.o" "$LIB/crt1.o"

# ---- clang resource dir ----------------------------------------------------
RES=$OUT/resource-dir
mkdir -p "$RES/lib/wasm32-unknown-wasip1-threads"
ln -s "$(cd "/usr/lib/llvm-$LLVM/lib/clang/$LLVM/include" && pwd)" "$RES/include"
cp "$BUILTINS" "$RES/lib/wasm32-unknown-wasip1-threads/libclang_rt.builtins.a"

# ---- smoke test --------------------------------------------------------------
cat > "$WORK/smoke.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
static int counter;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *p) {
    for (int i = 0; i < 1000; i++) { pthread_mutex_lock(&m); counter++; pthread_mutex_unlock(&m); }
    return p;
}
int main(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) if (pthread_create(&t[i], 0, work, 0)) return 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], 0);
    printf("%d\n", counter);
    return counter != 4000;
}
EOF
"$CC" --target=$TRIPLE --sysroot="$OUT" -resource-dir="$RES" -pthread -O2 \
    -Wl,--import-memory,--export-memory,--max-memory=67108864 \
    "$WORK/smoke.c" -o "$WORK/smoke.wasm" || die "the smoke test program does not link"
grep -q 'thread-spawn' "$WORK/smoke.wasm" || die "smoke.wasm has no thread-spawn import"
grep -q 'wasi_thread_start' "$WORK/smoke.wasm" || die "smoke.wasm does not export wasi_thread_start"

note "done in $(( $(date +%s) - START ))s: $OUT ($(du -sh "$OUT" | cut -f1))"
