/*
 * The only C in MVVM: entering wasm under a setjmp, leaving it with longjmp.
 *
 * Rust cannot call setjmp (a function that returns twice), so the runtime
 * calls `mvvm_rt_enter`, which installs a jump buffer in the slot the runtime
 * gives it, calls the array trampoline, and returns 0 on a normal return or
 * the (non-zero) trap code passed to `mvvm_rt_longjmp` (by the runtime's
 * `trap::unwind_with`, from the signal handler or `mvvm_rt_trap_at`).
 *
 * Trapping builtins are entered through the shims below: the Rust half
 * returns a status (0 = ok) and has already returned, so the longjmp skips
 * no Rust frame with live values; the shim passes its own return
 * address (a PC inside generated code) so the runtime can name the function
 * that trapped.
 */
#include <setjmp.h>
#include <stdint.h>

typedef void (*mvvm_array_fn)(void *vmctx, uint64_t *values);

/* Runtime side (Rust). */
extern void mvvm_rt_trap_at(int32_t code, const void *pc) __attribute__((noreturn));
extern int32_t mvvm_rt_memory_fill(void *vmctx, uint32_t dst, uint32_t val, uint32_t len);
extern int32_t mvvm_rt_memory_copy(void *vmctx, uint32_t dst, uint32_t src, uint32_t len);
extern int32_t mvvm_rt_memory_init(void *vmctx, uint32_t seg, uint32_t dst, uint32_t src, uint32_t len);
extern int32_t mvvm_rt_table_fill(void *vmctx, uint32_t table, uint32_t dst, uint64_t val, uint32_t len);
extern int32_t mvvm_rt_table_copy(void *vmctx, uint32_t dt, uint32_t st, uint32_t dst, uint32_t src, uint32_t len);
extern int32_t mvvm_rt_table_init(void *vmctx, uint32_t table, uint32_t seg, uint32_t dst, uint32_t src, uint32_t len);
extern int32_t mvvm_rt_memory_atomic_wait32(void *vmctx, uint64_t addr, uint32_t expected, int64_t timeout,
                                            int32_t *result);
extern int32_t mvvm_rt_memory_atomic_wait64(void *vmctx, uint64_t addr, uint64_t expected, int64_t timeout,
                                            int32_t *result);
extern int32_t mvvm_rt_memory_atomic_notify(void *vmctx, uint64_t addr, uint32_t count, int32_t *result);
extern void mvvm_rt_throw(void *vmctx, uint32_t tag, const uint64_t *values, const void *pc, const void *fp)
    __attribute__((noreturn));
extern void mvvm_rt_throw_ref(void *vmctx, uint64_t exn, const void *pc, const void *fp)
    __attribute__((noreturn));

/*
 * Calls `f(vmctx, values)` with a fresh jump buffer stored in `*slot` (the
 * previous value is restored on the way out, so entries nest). Returns 0 when
 * `f` returned, or the value given to `mvvm_rt_longjmp`.
 */
int32_t mvvm_rt_enter(mvvm_array_fn f, void *vmctx, uint64_t *values, void **slot) {
    jmp_buf buf;
    void *volatile prev = *slot;
    int32_t code;
    *slot = (void *)&buf;
    code = setjmp(buf);
    if (code == 0) {
        f(vmctx, values);
    }
    *slot = prev;
    return code;
}

/* Jumps back to the `mvvm_rt_enter` that stored `buf`; `code` must be != 0. */
void mvvm_rt_longjmp(void *buf, int32_t code) {
    longjmp(*(jmp_buf *)buf, code);
}

/* Builtin `raise`: never returns. */
void mvvm_b_raise(void *vmctx, int32_t code) {
    (void)vmctx;
    mvvm_rt_trap_at(code, __builtin_return_address(0));
}

#define CHECK(call)                                                   \
    do {                                                              \
        int32_t status = (call);                                      \
        if (status != 0)                                              \
            mvvm_rt_trap_at(status, __builtin_return_address(0));     \
    } while (0)

void mvvm_b_memory_fill(void *vmctx, uint32_t dst, uint32_t val, uint32_t len) {
    CHECK(mvvm_rt_memory_fill(vmctx, dst, val, len));
}

void mvvm_b_memory_copy(void *vmctx, uint32_t dst, uint32_t src, uint32_t len) {
    CHECK(mvvm_rt_memory_copy(vmctx, dst, src, len));
}

void mvvm_b_memory_init(void *vmctx, uint32_t seg, uint32_t dst, uint32_t src, uint32_t len) {
    CHECK(mvvm_rt_memory_init(vmctx, seg, dst, src, len));
}

void mvvm_b_table_fill(void *vmctx, uint32_t table, uint32_t dst, uint64_t val, uint32_t len) {
    CHECK(mvvm_rt_table_fill(vmctx, table, dst, val, len));
}

void mvvm_b_table_copy(void *vmctx, uint32_t dt, uint32_t st, uint32_t dst, uint32_t src, uint32_t len) {
    CHECK(mvvm_rt_table_copy(vmctx, dt, st, dst, src, len));
}

void mvvm_b_table_init(void *vmctx, uint32_t table, uint32_t seg, uint32_t dst, uint32_t src, uint32_t len) {
    CHECK(mvvm_rt_table_init(vmctx, table, seg, dst, src, len));
}

/*
 * Threads: the wait and notify builtins return a value and may trap; the
 * Rust half returns the status and writes the value into the shim's slot.
 */
int32_t mvvm_b_memory_atomic_wait32(void *vmctx, uint64_t addr, uint32_t expected, int64_t timeout) {
    int32_t result = 0;
    CHECK(mvvm_rt_memory_atomic_wait32(vmctx, addr, expected, timeout, &result));
    return result;
}

int32_t mvvm_b_memory_atomic_wait64(void *vmctx, uint64_t addr, uint64_t expected, int64_t timeout) {
    int32_t result = 0;
    CHECK(mvvm_rt_memory_atomic_wait64(vmctx, addr, expected, timeout, &result));
    return result;
}

int32_t mvvm_b_memory_atomic_notify(void *vmctx, uint64_t addr, uint32_t count) {
    int32_t result = 0;
    CHECK(mvvm_rt_memory_atomic_notify(vmctx, addr, count, &result));
    return result;
}

/*
 * Builtins `throw` and `throw_ref`: never return. The runtime walks the
 * frame-pointer chain from the wasm function that called the builtin, so
 * the shim hands over that function's return address into it and its frame
 * pointer. This file is built with -fno-omit-frame-pointer (build.rs), so on
 * both x86-64 and aarch64 the shim's own frame pointer points at its frame
 * record: [fp] is the caller's frame pointer, [fp + 8] the return address.
 * The shim owns nothing, so abandoning its frame when the runtime jumps to
 * a handler (or longjmps for an uncaught exception) loses nothing.
 */
void mvvm_b_throw(void *vmctx, uint32_t tag, const uint64_t *values) {
    mvvm_rt_throw(vmctx, tag, values, __builtin_return_address(0),
                  *(void *const *)__builtin_frame_address(0));
}

void mvvm_b_throw_ref(void *vmctx, uint64_t exn) {
    mvvm_rt_throw_ref(vmctx, exn, __builtin_return_address(0),
                      *(void *const *)__builtin_frame_address(0));
}

/*
 * Makes freshly written code visible to instruction fetch. A no-op on
 * x86-64 (coherent caches); on aarch64 it cleans the data cache and
 * invalidates the instruction cache over the range, which is required after
 * writing code and before executing it.
 */
void mvvm_rt_flush_icache(char *begin, char *end) {
    __builtin___clear_cache(begin, end);
}
