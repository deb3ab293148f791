/* Loops that clang -O3 -msimd128 vectorizes on its own: integer and float
 * reductions, saxpy-like element-wise loops, byte counts, min/max, sum of
 * absolute differences, saturating byte arithmetic. Each kernel is a
 * non-inlined function called many times, so a checkpoint lands inside a
 * vector loop with v128 accumulators live, or in a caller between calls.
 *
 * Float results print as bit patterns (and the float reductions only add
 * values whose sums are exact), so the output is the same under every
 * evaluation order and on every machine: a native build (gcc or clang,
 * -O3) prints the same lines. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 4096

static int32_t ia[N], ib[N];
static int16_t sa[N], sb[N];
static uint8_t ba[N], bb[N];
static float fx[N], fy[N];
static double dx[N], dy[N];

static uint32_t seed = 0x12345678u;
static uint32_t rnd(void) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
}

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static uint64_t dbits(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

__attribute__((noinline)) static uint32_t sum_i32(const int32_t *a, int n) {
    uint32_t s = 0;
    for (int i = 0; i < n; i++) s += (uint32_t)a[i];
    return s;
}

__attribute__((noinline)) static int64_t sum_i64_mul(const int32_t *a, const int32_t *b, int n) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += (int64_t)a[i] * b[i];
    return s;
}

__attribute__((noinline)) static uint32_t dot_i16(const int16_t *a, const int16_t *b, int n) {
    uint32_t s = 0;
    for (int i = 0; i < n; i++) s += (uint32_t)(a[i] * b[i]);
    return s;
}

__attribute__((noinline)) static uint32_t sad_u8(const uint8_t *a, const uint8_t *b, int n) {
    uint32_t s = 0;
    for (int i = 0; i < n; i++) {
        int d = a[i] - b[i];
        s += d < 0 ? -d : d;
    }
    return s;
}

__attribute__((noinline)) static void minmax_i32(const int32_t *a, int n, int32_t *lo, int32_t *hi) {
    int32_t mn = a[0], mx = a[0];
    for (int i = 0; i < n; i++) {
        mn = a[i] < mn ? a[i] : mn;
        mx = a[i] > mx ? a[i] : mx;
    }
    *lo = mn;
    *hi = mx;
}

__attribute__((noinline)) static uint8_t max_u8(const uint8_t *a, int n) {
    uint8_t m = 0;
    for (int i = 0; i < n; i++) m = a[i] > m ? a[i] : m;
    return m;
}

/* Counts of the bytes below 16, 16..63 and equal to 0x80: compare, mask,
 * add, the vectorizable form of a small histogram. */
__attribute__((noinline)) static void byte_classes(const uint8_t *a, int n, uint32_t out[3]) {
    uint32_t c0 = 0, c1 = 0, c2 = 0;
    for (int i = 0; i < n; i++) {
        c0 += a[i] < 16;
        c1 += a[i] >= 16 && a[i] < 64;
        c2 += a[i] == 0x80;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
}

/* A 16-bin histogram of the high nibbles, counted with one vectorizable
 * compare-and-add pass per bin. */
__attribute__((noinline)) static void nibble_histogram(const uint8_t *a, int n, uint32_t h[16]) {
    for (int k = 0; k < 16; k++) {
        uint32_t c = 0;
        for (int i = 0; i < n; i++) c += (a[i] >> 4) == k;
        h[k] = c;
    }
}

__attribute__((noinline)) static void saxpy(float a, const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = a * x[i] + y[i];
}

__attribute__((noinline)) static void daxpy(double a, const double *x, double *y, int n) {
    for (int i = 0; i < n; i++) y[i] = a * x[i] + y[i];
}

__attribute__((noinline)) static void add_sat_u8(uint8_t *a, const uint8_t *b, int n) {
    for (int i = 0; i < n; i++) {
        unsigned s = a[i] + b[i];
        a[i] = s > 255 ? 255 : s;
    }
}

__attribute__((noinline)) static void avg_u8(uint8_t *a, const uint8_t *b, int n) {
    for (int i = 0; i < n; i++) a[i] = (uint8_t)((a[i] + b[i] + 1) >> 1);
}

/* Stirs the bytes so that saturation and averaging do not pin them. */
__attribute__((noinline)) static void stir_u8(uint8_t *a, uint8_t *b, int n, int k) {
    for (int i = 0; i < n; i++) {
        a[i] = (uint8_t)(a[i] * 37 + i + k * 11);
        b[i] = (uint8_t)(b[i] ^ (i * 13 + k));
    }
}

__attribute__((noinline)) static void mix_i32(int32_t *a, const int32_t *b, int n, int k) {
    for (int i = 0; i < n; i++)
        a[i] = (int32_t)(((uint32_t)a[i] ^ (uint32_t)(b[i] >> 3)) * 7u + ((uint32_t)b[i] << (k & 7)) -
                         (uint32_t)(a[i] >> 1));
}

__attribute__((noinline)) static void clamp_i16(int16_t *a, int n, int16_t lo, int16_t hi) {
    for (int i = 0; i < n; i++) a[i] = a[i] < lo ? lo : a[i] > hi ? hi : a[i];
}

/* Float reductions that LLVM may reorder (reassociation allowed here
 * only): the values keep every partial sum exact (floats: multiples of
 * 1/64 below 32, or of 1/16 below 64; doubles: multiples of 1/64 below
 * 2^14), so any order gives the same bits. */
__attribute__((noinline)) static float sum_f32(const float *a, int n) {
#ifdef __clang__
#pragma clang fp reassociate(on)
#endif
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i];
    return s;
}

__attribute__((noinline)) static double sum_f64(const double *a, int n) {
#ifdef __clang__
#pragma clang fp reassociate(on)
#endif
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i];
    return s;
}

__attribute__((noinline)) static void scale_f32(float *a, int n, float k) {
    for (int i = 0; i < n; i++) {
        float v = a[i] * k;
        a[i] = v > 512.0f ? v - 512.0f : v < -512.0f ? v + 512.0f : v;
    }
}

__attribute__((noinline)) static void i2f(const int32_t *a, float *f, int n) {
    for (int i = 0; i < n; i++) f[i] = (float)(a[i] & 0x3ff) * 0.0625f;
}

__attribute__((noinline)) static void i2d(const int32_t *a, double *d, int n) {
    for (int i = 0; i < n; i++) d[i] = (double)(a[i] & 0xfffff) / 64.0;
}

__attribute__((noinline)) static void half_f64(double *a, int n) {
    for (int i = 0; i < n; i++) a[i] *= 0.5;
}

__attribute__((noinline)) static void widen_u8_i32(const uint8_t *a, int32_t *out, int n) {
    for (int i = 0; i < n; i++) out[i] += a[i];
}

__attribute__((noinline)) static void narrow_i32_i16(const int32_t *a, int16_t *out, int n) {
    for (int i = 0; i < n; i++) out[i] = (int16_t)(a[i] >> 8);
}

int main(void) {
    for (int i = 0; i < N; i++) {
        ia[i] = (int32_t)rnd();
        ib[i] = (int32_t)(rnd() % 20001) - 10000;
        sa[i] = (int16_t)rnd();
        sb[i] = (int16_t)(rnd() % 2001) - 1000;
        ba[i] = (uint8_t)rnd();
        bb[i] = (uint8_t)(rnd() >> 7);
        fx[i] = (float)((int)(rnd() % 4096) - 2048) / 64.0f;
        fy[i] = (float)((int)(rnd() % 4096) - 2048) / 64.0f;
        dx[i] = (double)((int)(rnd() % 65536) - 32768) / 64.0;
        dy[i] = (double)((int)(rnd() % 65536) - 32768) / 64.0;
    }

    uint64_t check = 0;
    for (int round = 0; round < 40; round++) {
        uint32_t s = sum_i32(ia, N);
        int64_t m = sum_i64_mul(ia, ib, N);
        uint32_t d = dot_i16(sa, sb, N);
        uint32_t sad = sad_u8(ba, bb, N);
        int32_t lo, hi;
        minmax_i32(ia, N, &lo, &hi);
        uint8_t bmax = max_u8(bb, N);
        uint32_t cls[3];
        byte_classes(ba, N, cls);
        uint32_t h[16];
        nibble_histogram(ba, N, h);
        uint32_t hs = 0;
        for (int k = 0; k < 16; k++) hs = hs * 31 + h[k];
        float fs = sum_f32(fx, N);
        double ds = sum_f64(dx, N);
        if (round % 8 == 0)
            printf("round %2d: sum %u dot64 %lld dot16 %u sad %u min %d max %d bmax %u "
                   "classes %u %u %u hist %08x fsum %08x dsum %016llx\n",
                   round, s, (long long)m, d, sad, lo, hi, bmax, cls[0], cls[1], cls[2], hs,
                   fbits(fs), (unsigned long long)dbits(ds));
        check = check * 1000003u + s;
        check = check * 1000003u + (uint64_t)m;
        check = check * 1000003u + d + sad + (uint32_t)lo + (uint32_t)hi + bmax;
        check = check * 1000003u + cls[0] + cls[1] * 3u + cls[2] * 5u + hs;
        check = check * 1000003u + fbits(fs) + dbits(ds);

        /* Change the data for the next round. */
        saxpy(0.5f, fx, fy, N);
        scale_f32(fy, N, 0.75f);
        daxpy(-0.25, dx, dy, N);
        add_sat_u8(bb, ba, N);
        avg_u8(ba, bb, N);
        stir_u8(ba, bb, N, round);
        mix_i32(ia, ib, N, round);
        clamp_i16(sa, N, (int16_t)(-20000 + round * 100), (int16_t)(20000 - round * 100));
        widen_u8_i32(ba, ib, N);
        narrow_i32_i16(ia, sb, N);
        i2f(ia, fx, N);
        i2d(ia, dx, N);
        half_f64(dy, N);
    }
    uint32_t fyb = 0;
    uint64_t dyb = 0;
    for (int i = 0; i < N; i++) {
        fyb = fyb * 33 + fbits(fy[i]);
        dyb = dyb * 33 + dbits(dy[i]);
    }
    printf("fy %08x dy %016llx\n", fyb, (unsigned long long)dyb);
    printf("checksum %016llx\n", (unsigned long long)check);
    return 0;
}
