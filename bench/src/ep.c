/*
 * ep: the NAS parallel benchmarks' EP ("embarrassingly parallel") kernel:
 * 2^M pairs of uniform numbers from the NAS linear congruential generator
 * (a = 5^13, modulus 2^46), Gaussian pairs by the Marsaglia polar method,
 * counted in square annuli. Usage: ep -m M.
 */
#include "bench_common.h"
#include <math.h>

#define MASK46 ((1ULL << 46) - 1)
#define A_LCG 1220703125ULL /* 5^13 */

/* x * A_LCG mod 2^46 without overflow: split x at bit 24. */
static inline uint64_t lcg_next(uint64_t x) {
    uint64_t lo = A_LCG * (x & 0xffffffULL);
    uint64_t hi = (A_LCG * (x >> 24)) & ((1ULL << 22) - 1);
    return (lo + (hi << 24)) & MASK46;
}

int main(int argc, char **argv) {
    int64_t m = arg_int(argc, argv, 'm', 16);
    if (m < 1 || m > 40) {
        fprintf(stderr, "usage: ep -m M (1..40)\n");
        return 2;
    }
    const double r46 = 1.0 / 70368744177664.0; /* 2^-46 */
    uint64_t seed = 271828183ULL;
    int64_t counts[10] = {0};
    double sx = 0.0, sy = 0.0;
    int64_t pairs = (int64_t)1 << m, accepted = 0;
    for (int64_t p = 0; p < pairs; p++) {
        seed = lcg_next(seed);
        double x = 2.0 * ((double)seed * r46) - 1.0;
        seed = lcg_next(seed);
        double y = 2.0 * ((double)seed * r46) - 1.0;
        double t = x * x + y * y;
        if (t > 1.0 || t == 0.0)
            continue;
        double f = sqrt(-2.0 * bm_log(t) / t);
        double gx = x * f, gy = y * f;
        double ax = fabs(gx), ay = fabs(gy);
        int l = (int)(ax > ay ? ax : ay);
        if (l < 10)
            counts[l]++;
        sx += gx;
        sy += gy;
        accepted++;
    }
    hash_t h = HASH_INIT;
    hash_f64(&h, sx);
    hash_f64(&h, sy);
    printf("ep 2^%" PRId64 " pairs: %" PRId64 " gaussian pairs, sx %.10e sy %.10e\n", m,
           accepted, sx, sy);
    for (int l = 0; l < 10; l++) {
        hash_u64(&h, (uint64_t)counts[l]);
        printf("  annulus %d: %" PRId64 "\n", l, counts[l]);
    }
    print_checksum(&h);
    return 0;
}
