/*
 * memfill: a memory-heavy workload for checkpoint and restore figures. It
 * fills MIB mebibytes of linear memory with generated data, then makes
 * PASSES read-modify-write sweeps over all of it (each element mixed with a
 * far element, so the whole footprint stays live and dirty). Usage:
 * memfill -m MIB -p PASSES [-w MIB] [-d USEC].
 *
 * For pre-copy (live) migration figures, two options make it write more
 * slowly than a link carries without changing what it computes for given
 * -m, -p and -w: -w MIB limits the passes to the first MIB mebibytes (the
 * working set; default: all of it) and -d USEC sleeps USEC microseconds
 * after each mebibyte a pass writes (no clock is read: output depends on
 * the arguments only).
 */
#include "bench_common.h"
#include <unistd.h>

int main(int argc, char **argv) {
    int64_t mib = arg_int(argc, argv, 'm', 4), passes = arg_int(argc, argv, 'p', 2);
    int64_t wmib = arg_int(argc, argv, 'w', mib), delay = arg_int(argc, argv, 'd', 0);
    if (mib < 1 || mib > 3584 || passes < 0 || wmib < 1 || wmib > mib || delay < 0 ||
        delay > 1000000) {
        fprintf(stderr, "usage: memfill -m MIB (1..3584) -p PASSES [-w MIB (1..m)] [-d USEC]\n");
        return 2;
    }
    uint64_t n = (uint64_t)mib << 17; /* 8-byte words */
    uint64_t w = (uint64_t)wmib << 17; /* words the passes write */
    uint64_t *a = (uint64_t *)xmalloc((size_t)n * sizeof(uint64_t));
    rng_t rng = {0xfeed};
    for (uint64_t i = 0; i < n; i++)
        a[i] = rng_next(&rng);
    hash_t h = HASH_INIT;
    for (int64_t p = 0; p < passes; p++) {
        uint64_t stride = (w / 3) | 1, acc = 0;
        for (uint64_t i = 0; i < w; i++) {
            uint64_t j = (i + stride * (uint64_t)(p + 1)) % w;
            a[i] = (a[i] ^ (a[j] >> 7)) * 0x9e3779b97f4a7c15ULL + (uint64_t)p;
            acc += a[i];
            if (delay > 0 && (i & ((1u << 17) - 1)) == (1u << 17) - 1)
                usleep((useconds_t)delay);
        }
        hash_u64(&h, acc);
        printf("pass %" PRId64 ": sum %016" PRIx64 "\n", p, acc);
    }
    /* a sample of the final memory, so a lost page changes the checksum */
    for (uint64_t i = 0; i < n; i += 509)
        hash_u64(&h, a[i]);
    printf("memfill: %" PRId64 " MiB, %" PRId64 " passes\n", mib, passes);
    print_checksum(&h);
    free(a);
    return 0;
}
