/*
 * atomic_reduce: a parallel reduction with C11 atomics. OMP_NUM_THREADS
 * threads claim chunks of an index range with atomic_fetch_add on a shared
 * cursor, and fold each chunk into shared totals with atomic_fetch_add
 * (sum, count), atomic_fetch_xor and a compare-exchange maximum. All of
 * these are commutative, so the totals do not depend on which thread got
 * which chunk. Two phases are separated by a sense-reversing spin barrier
 * built on atomics; a _Thread_local counter with a non-zero initial value
 * checks that every thread gets its own initialised TLS block.
 *
 * Usage: atomic_reduce [-n ITEMS] [-c CHUNK].
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <inttypes.h>

#include "threads_common.h"

static uint64_t n_items;
static uint32_t chunk;
static uint32_t *data;

static atomic_uint_fast64_t cursor;
static atomic_uint_fast64_t total_sum;
static atomic_uint_fast64_t total_odd;
static atomic_uint_fast64_t total_xor;
static atomic_uint_fast64_t total_max;
static atomic_int tls_ok_threads;
static atomic_uint_fast64_t chunks_done;

/* Sense-reversing barrier. */
static atomic_int bar_count;
static atomic_int bar_sense;
static int nthreads;

static void spin_barrier(int *local_sense) {
    *local_sense = !*local_sense;
    if (atomic_fetch_add(&bar_count, 1) == nthreads - 1) {
        atomic_store(&bar_count, 0);
        atomic_store(&bar_sense, *local_sense);
    } else {
        while (atomic_load(&bar_sense) != *local_sense)
            ;
    }
}

static _Thread_local uint64_t my_chunks = 1000;

static uint32_t value_at(uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)(z ^ (z >> 31));
}

static void *worker(void *arg) {
    int local_sense = 0;
    (void)arg;
    int tls_fresh = my_chunks == 1000;

    /* Phase 1: fill the array, chunk by chunk. */
    for (;;) {
        uint64_t start = atomic_fetch_add(&cursor, chunk);
        if (start >= n_items)
            break;
        uint64_t end = start + chunk < n_items ? start + chunk : n_items;
        for (uint64_t i = start; i < end; i++)
            data[i] = value_at(i);
    }
    spin_barrier(&local_sense);
    /* One thread resets the cursor between the barriers. */
    if (arg == NULL)
        atomic_store(&cursor, 0);
    spin_barrier(&local_sense);

    /* Phase 2: reduce. */
    for (;;) {
        uint64_t start = atomic_fetch_add(&cursor, chunk);
        if (start >= n_items)
            break;
        uint64_t end = start + chunk < n_items ? start + chunk : n_items;
        uint64_t sum = 0, odd = 0, x = 0, mx = 0;
        for (uint64_t i = start; i < end; i++) {
            /* neighbours of the fill phase: reads other threads' writes */
            uint64_t v = data[i] ^ (i + 1 < n_items ? data[i + 1] >> 7 : 0);
            for (int r = 0; r < 6; r++)
                v = (v ^ (v >> 17)) * 0xed5ad4bbU % 0xfffffffbU;
            sum += v;
            odd += v & 1;
            x ^= v * (i | 1);
            if (v > mx)
                mx = v;
        }
        atomic_fetch_add(&total_sum, sum);
        atomic_fetch_add(&total_odd, odd);
        atomic_fetch_xor(&total_xor, x);
        uint64_t cur = atomic_load(&total_max);
        while (mx > cur && !atomic_compare_exchange_weak(&total_max, &cur, mx))
            ;
        my_chunks++;
    }
    atomic_fetch_add(&chunks_done, my_chunks - 1000);
    if (tls_fresh)
        atomic_fetch_add(&tls_ok_threads, 1);
    return NULL;
}

static long arg_long(int argc, char **argv, const char *flag, long def) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return strtol(argv[i + 1], NULL, 10);
    return def;
}

int main(int argc, char **argv) {
    n_items = (uint64_t)arg_long(argc, argv, "-n", 8000000);
    chunk = (uint32_t)arg_long(argc, argv, "-c", 4096);
    nthreads = thread_count();
    if (n_items < 1 || chunk < 1) {
        fprintf(stderr, "usage: atomic_reduce [-n ITEMS] [-c CHUNK]\n");
        return 2;
    }
    data = malloc(n_items * sizeof *data);
    pthread_t *tids = calloc((size_t)nthreads, sizeof *tids);
    if (data == NULL || tids == NULL)
        return 3;
    /* The main thread is worker 0 (arg NULL); the others get non-NULL. */
    for (int i = 1; i < nthreads; i++)
        CHECK(pthread_create(&tids[i], NULL, worker, (void *)1));
    my_chunks = 1000;
    worker(NULL);
    for (int i = 1; i < nthreads; i++)
        CHECK(pthread_join(tids[i], NULL));

    uint64_t expect_chunks = (n_items + chunk - 1) / chunk;
    printf("atomic_reduce: %" PRIu64 " items, chunk %u\n", n_items, chunk);
    printf("sum %016" PRIx64 "\n", (uint64_t)atomic_load(&total_sum));
    printf("odd %" PRIu64 "\n", (uint64_t)atomic_load(&total_odd));
    printf("xor %016" PRIx64 "\n", (uint64_t)atomic_load(&total_xor));
    printf("max %016" PRIx64 "\n", (uint64_t)atomic_load(&total_max));
    printf("chunks: %s\n", atomic_load(&chunks_done) == expect_chunks ? "all, once" : "WRONG");
    printf("tls: %s\n", atomic_load(&tls_ok_threads) == nthreads ? "ok" : "WRONG");
    free(data);
    free(tids);
    return atomic_load(&chunks_done) == expect_chunks && atomic_load(&tls_ok_threads) == nthreads ? 0 : 1;
}
