/*
 * futex_pc: producers and consumers over a bounded ring buffer, synchronised
 * only with futex-style primitives built directly on wasm's
 * memory.atomic.wait32 / memory.atomic.notify (__builtin_wasm_memory_atomic_*;
 * natively the Linux futex system call): two counting semaphores (free
 * slots, filled slots) and a three-state mutex (Drepper's "mutex2") over the
 * ring indices and a histogram. No pthread mutex or condition variable.
 *
 * OMP_NUM_THREADS threads: half produce (at least one), the rest consume
 * (at least one). Producer p makes items i with i % P == p; consumers fold
 * what they take into commutative totals, so the output does not depend on
 * who took what. Also checks that a timed wait on an unchanging word times
 * out.
 *
 * Usage: futex_pc [-n ITEMS].
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <inttypes.h>
#include <time.h>

#include "threads_common.h"

#ifdef __wasm__
/* Returns 0 when woken, 1 when *addr != expected, 2 on timeout. */
static int futex_wait(atomic_int *addr, int expected, int64_t timeout_ns) {
    return __builtin_wasm_memory_atomic_wait32((int *)addr, expected, timeout_ns);
}
static void futex_wake(atomic_int *addr, int count) {
    __builtin_wasm_memory_atomic_notify((int *)addr, (unsigned)count);
}
#else
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
static int futex_wait(atomic_int *addr, int expected, int64_t timeout_ns) {
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tp = &ts;
    }
    if (syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, expected, tp, NULL, 0) == 0)
        return 0;
    if (errno == EAGAIN)
        return 1;
    if (errno == ETIMEDOUT)
        return 2;
    return 0; /* EINTR: a spurious wake-up, as wasm allows too */
}
static void futex_wake(atomic_int *addr, int count) {
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}
#endif

/* ---- mutex: 0 free, 1 locked, 2 locked with (maybe) waiters ------------ */

typedef struct {
    atomic_int state;
} fmutex_t;

static void fmutex_lock(fmutex_t *m) {
    int c = 0;
    if (atomic_compare_exchange_strong(&m->state, &c, 1))
        return;
    if (c != 2)
        c = atomic_exchange(&m->state, 2);
    while (c != 0) {
        futex_wait(&m->state, 2, -1);
        c = atomic_exchange(&m->state, 2);
    }
}

static void fmutex_unlock(fmutex_t *m) {
    if (atomic_fetch_sub(&m->state, 1) != 1) {
        atomic_store(&m->state, 0);
        futex_wake(&m->state, 1);
    }
}

/* ---- counting semaphore --------------------------------------------------- */

typedef struct {
    atomic_int count;
    atomic_int waiters;
} fsem_t;

static void fsem_wait(fsem_t *s) {
    for (;;) {
        int c = atomic_load(&s->count);
        while (c > 0)
            if (atomic_compare_exchange_weak(&s->count, &c, c - 1))
                return;
        atomic_fetch_add(&s->waiters, 1);
        futex_wait(&s->count, 0, -1);
        atomic_fetch_sub(&s->waiters, 1);
    }
}

static void fsem_post(fsem_t *s) {
    atomic_fetch_add(&s->count, 1);
    if (atomic_load(&s->waiters) > 0)
        futex_wake(&s->count, 1);
}

/* ---- the ring ----------------------------------------------------------------- */

#define RING 64
#define POISON UINT64_MAX

/* Everything the ring mutex protects is accessed with relaxed atomics: the
 * mutex provides the ordering, the atomics keep the compiler from caching a
 * value across the lock (gcc -O2 otherwise keeps a non-escaping static in a
 * register across the inlined lock and unlock). */
static atomic_uint_fast64_t ring[RING];
static atomic_uint ring_head, ring_tail;
static fmutex_t ring_lock;
static fsem_t free_slots = {RING, 0};
static fsem_t filled = {0, 0};
static atomic_uint_fast64_t histogram[16];

#define RELAXED memory_order_relaxed

static atomic_uint_fast64_t total_sum, total_xor, total_count;

static uint64_t n_items;
static int n_producers;

static uint64_t item(uint64_t i) {
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (z ^ (z >> 31)) >> 1; /* never POISON */
}

static void put(uint64_t v) {
    fsem_wait(&free_slots);
    fmutex_lock(&ring_lock);
    unsigned t = atomic_load_explicit(&ring_tail, RELAXED);
    atomic_store_explicit(&ring[t % RING], v, RELAXED);
    atomic_store_explicit(&ring_tail, t + 1, RELAXED);
    fmutex_unlock(&ring_lock);
    fsem_post(&filled);
}

static uint64_t take(void) {
    fsem_wait(&filled);
    fmutex_lock(&ring_lock);
    unsigned h = atomic_load_explicit(&ring_head, RELAXED);
    uint64_t v = atomic_load_explicit(&ring[h % RING], RELAXED);
    atomic_store_explicit(&ring_head, h + 1, RELAXED);
    if (v != POISON)
        atomic_store_explicit(&histogram[v % 16],
                              atomic_load_explicit(&histogram[v % 16], RELAXED) + 1, RELAXED);
    fmutex_unlock(&ring_lock);
    fsem_post(&free_slots);
    return v;
}

static void *producer(void *arg) {
    uint64_t p = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = p; i < n_items; i += (uint64_t)n_producers)
        put(item(i));
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    uint64_t sum = 0, x = 0, count = 0;
    for (;;) {
        uint64_t v = take();
        if (v == POISON)
            break;
        /* some work per item, so consumers are not only waiting */
        uint64_t w = v;
        for (int r = 0; r < 200; r++)
            w = (w ^ (w >> 13)) * 0xff51afd7ed558ccdULL;
        sum += v;
        x ^= w;
        count++;
    }
    atomic_fetch_add(&total_sum, sum);
    atomic_fetch_xor(&total_xor, x);
    atomic_fetch_add(&total_count, count);
    return NULL;
}

static long arg_long(int argc, char **argv, const char *flag, long def) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return strtol(argv[i + 1], NULL, 10);
    return def;
}

int main(int argc, char **argv) {
    n_items = (uint64_t)arg_long(argc, argv, "-n", 300000);
    int nthreads = thread_count();
    if (nthreads < 2)
        nthreads = 2;
    n_producers = nthreads / 2;
    int n_consumers = nthreads - n_producers;

    /* A wait on a word nobody changes must time out (10 ms). */
    atomic_int never = 7;
    int timed = futex_wait(&never, 7, 10 * 1000 * 1000);
    /* A wait on a stale value must return at once. */
    int stale = futex_wait(&never, 8, -1);

    pthread_t tids[64];
    for (int i = 0; i < n_consumers; i++)
        CHECK(pthread_create(&tids[i], NULL, consumer, NULL));
    for (int p = 0; p < n_producers; p++)
        CHECK(pthread_create(&tids[n_consumers + p], NULL, producer, (void *)(uintptr_t)p));
    for (int p = 0; p < n_producers; p++)
        CHECK(pthread_join(tids[n_consumers + p], NULL));
    for (int i = 0; i < n_consumers; i++)
        put(POISON);
    for (int i = 0; i < n_consumers; i++)
        CHECK(pthread_join(tids[i], NULL));

    uint64_t expect_sum = 0;
    for (uint64_t i = 0; i < n_items; i++)
        expect_sum += item(i);
    uint64_t hist_hash = 0xcbf29ce484222325ULL, hist_total = 0;
    for (int b = 0; b < 16; b++) {
        uint64_t hb = atomic_load(&histogram[b]);
        hist_hash = (hist_hash ^ hb) * 0x100000001b3ULL;
        hist_total += hb;
    }
    printf("futex_pc: %" PRIu64 " items\n", n_items);
    printf("timed wait: %s\n", timed == 2 ? "timed out" : "WRONG");
    printf("stale wait: %s\n", stale == 1 ? "not-equal" : "WRONG");
    printf("count %" PRIu64 "\n", (uint64_t)atomic_load(&total_count));
    printf("sum %016" PRIx64 " (%s)\n", (uint64_t)atomic_load(&total_sum),
           atomic_load(&total_sum) == expect_sum ? "matches" : "WRONG");
    printf("xor %016" PRIx64 "\n", (uint64_t)atomic_load(&total_xor));
    printf("histogram %016" PRIx64 " total %" PRIu64 "\n", hist_hash, hist_total);
    printf("ring: %s\n",
           atomic_load(&ring_head) == atomic_load(&ring_tail) && atomic_load(&filled.count) == 0
               ? "empty"
               : "WRONG");
    return atomic_load(&total_count) == n_items && hist_total == n_items &&
                   atomic_load(&total_sum) == expect_sum && timed == 2 && stale == 1
               ? 0
               : 1;
}
