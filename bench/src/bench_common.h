/*
 * Shared helpers for the MVVM benchmark workloads.
 *
 * Every workload is one C file built twice: natively with `gcc -O2` and to
 * wasm32-wasi with clang. The two builds must print the same checksum, so
 * everything that could differ between the two C libraries is done here
 * instead:
 *
 *  - random numbers come from one seeded generator (splitmix64), never rand();
 *  - transcendental functions (exp, log, sin, cos) are computed with plain
 *    arithmetic below, because glibc and wasi-libc (musl) may differ in the
 *    last bit; only IEEE-exact operations (+ - * / sqrt, conversions) are
 *    taken from the compiler;
 *  - widths are explicit (`long` and pointers are 4 bytes on wasm32, 8 on
 *    x86-64), and no result ever depends on an address;
 *  - nothing reads a clock: output depends on the arguments only.
 *
 * Checksums hash the exact bits of the results (FNV-1a over 64-bit words), so
 * any divergence between the builds is caught, not rounded away.
 */
#ifndef MVVM_BENCH_COMMON_H
#define MVVM_BENCH_COMMON_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arguments --------------------------------------------------------- */

/* Value of flag `-F` in argv, given as `-F VALUE` or `-FVALUE`; `def` when
 * absent. Exits with status 2 on a malformed value, so a typo in the harness
 * is never silently a different problem size. */
static inline int64_t arg_int(int argc, char **argv, char flag, int64_t def) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != flag)
            continue;
        const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[i + 1] : NULL);
        char *end = NULL;
        if (v == NULL) {
            fprintf(stderr, "missing value for -%c\n", flag);
            exit(2);
        }
        long long x = strtoll(v, &end, 10);
        if (end == v || *end != '\0') {
            fprintf(stderr, "bad value for -%c: %s\n", flag, v);
            exit(2);
        }
        return (int64_t)x;
    }
    return def;
}

/* Allocation that never returns NULL: a failed allocation is an error exit,
 * reported the same way by both builds. */
static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%lu bytes)\n", (unsigned long)n);
        exit(3);
    }
    return p;
}

static inline void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%lu x %lu bytes)\n", (unsigned long)n,
                (unsigned long)size);
        exit(3);
    }
    return p;
}

/* ---- random numbers ---------------------------------------------------- */

/* splitmix64: small, fast, and identical everywhere. */
typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, n) (n > 0); the tiny modulo bias does not matter
 * for benchmarks and keeps both builds trivially identical. */
static inline uint64_t rng_below(rng_t *r, uint64_t n) { return rng_next(r) % n; }

/* Uniform double in [0, 1) with 53 random bits (exact conversion). */
static inline double rng_unit(rng_t *r) {
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- checksums --------------------------------------------------------- */

typedef struct {
    uint64_t h;
} hash_t;

#define HASH_INIT {0xcbf29ce484222325ULL}

static inline void hash_u64(hash_t *h, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        h->h ^= (v >> (8 * i)) & 0xff;
        h->h *= 0x100000001b3ULL;
    }
}

static inline void hash_f64(hash_t *h, double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    hash_u64(h, v);
}

static inline void hash_f32(hash_t *h, float f) {
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    hash_u64(h, v);
}

static inline void hash_bytes(hash_t *h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) {
        h->h ^= b[i];
        h->h *= 0x100000001b3ULL;
    }
}

/* The one line the harness compares between native, MVVM and Wasmtime. */
static inline void print_checksum(const hash_t *h) { printf("checksum: %016" PRIx64 "\n", h->h); }

/* ---- portable math ------------------------------------------------------ */

#define BM_LN2_HI 6.93147180369123816490e-01
#define BM_LN2_LO 1.90821492927058770002e-10
#define BM_INV_LN2 1.44269504088896338700e+00
#define BM_PI 3.14159265358979323846
#define BM_PIO2_HI 1.57079632673412561417e+00
#define BM_PIO2_LO 6.07710050650619224932e-11
#define BM_2_OVER_PI 6.36619772367581382433e-01

/* Nearest integer of x (ties away from zero) for |x| < 2^52. */
static inline double bm_round(double x) {
    return x >= 0 ? (double)(int64_t)(x + 0.5) : -(double)(int64_t)(-x + 0.5);
}

/* 2^n as a double, for -1022 <= n <= 1023, built from its bits. */
static inline double bm_pow2i(int n) {
    uint64_t bits = (uint64_t)(n + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* e^x, accurate to a few ulps; saturates outside the double range. */
static inline double bm_exp(double x) {
    if (x > 709.0)
        return bm_pow2i(1023) * 2.0;
    if (x < -708.0)
        return 0.0;
    double k = bm_round(x * BM_INV_LN2);
    double r = (x - k * BM_LN2_HI) - k * BM_LN2_LO; /* |r| <= ln2/2 */
    /* Taylor series to r^13: error below 2^-60 on the reduced range. */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    return p * bm_pow2i((int)k);
}

/* Natural logarithm for x > 0 (returns -inf-like -1e308 for x <= 0). */
static inline double bm_log(double x) {
    if (!(x > 0.0))
        return -1e308;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff);
    if (e == 0) { /* subnormal: scale up first */
        x *= 18014398509481984.0; /* 2^54 */
        memcpy(&bits, &x, sizeof bits);
        e = (int)((bits >> 52) & 0x7ff) - 54;
    }
    e -= 1023;
    bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    memcpy(&m, &bits, sizeof m); /* m in [1, 2) */
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e += 1;
    }
    double s = (m - 1.0) / (m + 1.0); /* |s| <= 0.1716 */
    double s2 = s * s;
    double p = 1.0 / 25.0;
    p = p * s2 + 1.0 / 23.0;
    p = p * s2 + 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    return 2.0 * s * p + (double)e * BM_LN2_HI + (double)e * BM_LN2_LO;
}

/* sin and cos on |r| <= pi/4 (Taylor series to r^17 / r^18). */
static inline double bm_sin_kernel(double r) {
    double r2 = r * r;
    double p = 1.0 / 355687428096000.0;
    p = p * r2 - 1.0 / 1307674368000.0;
    p = p * r2 + 1.0 / 6227020800.0;
    p = p * r2 - 1.0 / 39916800.0;
    p = p * r2 + 1.0 / 362880.0;
    p = p * r2 - 1.0 / 5040.0;
    p = p * r2 + 1.0 / 120.0;
    p = p * r2 - 1.0 / 6.0;
    return r + r * r2 * p;
}

static inline double bm_cos_kernel(double r) {
    double r2 = r * r;
    double p = 1.0 / 6402373705728000.0;
    p = p * r2 - 1.0 / 20922789888000.0;
    p = p * r2 + 1.0 / 87178291200.0;
    p = p * r2 - 1.0 / 479001600.0;
    p = p * r2 + 1.0 / 3628800.0;
    p = p * r2 - 1.0 / 40320.0;
    p = p * r2 + 1.0 / 720.0;
    p = p * r2 - 1.0 / 24.0;
    p = p * r2 + 0.5;
    return 1.0 - r2 * p;
}

/* sin(x) and cos(x) for |x| up to about 1e6 (Cody-Waite reduction). */
static inline void bm_sincos(double x, double *s, double *c) {
    double k = bm_round(x * BM_2_OVER_PI);
    double r = (x - k * BM_PIO2_HI) - k * BM_PIO2_LO;
    double sr = bm_sin_kernel(r), cr = bm_cos_kernel(r);
    int q = (int)((int64_t)k & 3);
    switch (q) {
    case 0: *s = sr; *c = cr; break;
    case 1: *s = cr; *c = -sr; break;
    case 2: *s = -sr; *c = -cr; break;
    default: *s = -cr; *c = sr; break;
    }
}

static inline double bm_sin(double x) {
    double s, c;
    bm_sincos(x, &s, &c);
    return s;
}

static inline double bm_cos(double x) {
    double s, c;
    bm_sincos(x, &s, &c);
    return c;
}

#endif
