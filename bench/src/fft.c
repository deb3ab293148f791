/*
 * fft: iterative radix-2 complex FFT of 2^M points (twiddles from the
 * portable sin/cos), applied forward and back R times, in the style of the
 * NAS FT kernel's 1-D passes. Usage: fft -m LOG2N -r REPS.
 */
#include "bench_common.h"
#include <math.h>

static void fft(double *re, double *im, const double *wr, const double *wi, int64_t n,
                int inverse) {
    /* bit reversal */
    for (int64_t i = 1, j = 0; i < n; i++) {
        int64_t bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            double t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    for (int64_t len = 2; len <= n; len <<= 1) {
        int64_t half = len >> 1, step = n / len;
        for (int64_t i = 0; i < n; i += len)
            for (int64_t k = 0; k < half; k++) {
                double c = wr[k * step], s = inverse ? -wi[k * step] : wi[k * step];
                int64_t a = i + k, b = a + half;
                double tr = re[b] * c - im[b] * s;
                double ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
    }
    if (inverse) {
        double inv = 1.0 / (double)n;
        for (int64_t i = 0; i < n; i++) {
            re[i] *= inv;
            im[i] *= inv;
        }
    }
}

int main(int argc, char **argv) {
    int64_t m = arg_int(argc, argv, 'm', 10), reps = arg_int(argc, argv, 'r', 2);
    if (m < 1 || m > 26 || reps < 1) {
        fprintf(stderr, "usage: fft -m LOG2N (1..26) -r REPS\n");
        return 2;
    }
    int64_t n = (int64_t)1 << m;
    double *re = (double *)xmalloc((size_t)n * sizeof(double));
    double *im = (double *)xmalloc((size_t)n * sizeof(double));
    double *r0 = (double *)xmalloc((size_t)n * sizeof(double));
    double *wr = (double *)xmalloc((size_t)(n / 2 + 1) * sizeof(double));
    double *wi = (double *)xmalloc((size_t)(n / 2 + 1) * sizeof(double));
    for (int64_t k = 0; k < n / 2 + 1; k++)
        bm_sincos(-2.0 * BM_PI * (double)k / (double)n, &wi[k], &wr[k]);
    rng_t rng = {2718};
    for (int64_t i = 0; i < n; i++) {
        re[i] = r0[i] = rng_unit(&rng) - 0.5;
        im[i] = 0.0;
    }
    hash_t h = HASH_INIT;
    double peak = 0.0;
    for (int64_t r = 0; r < reps; r++) {
        fft(re, im, wr, wi, n, 0);
        peak = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double mag = re[i] * re[i] + im[i] * im[i];
            if (mag > peak)
                peak = mag;
            if ((i & 1023) == 0) {
                hash_f64(&h, re[i]);
                hash_f64(&h, im[i]);
            }
        }
        fft(re, im, wr, wi, n, 1);
    }
    double err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(re[i] - r0[i]) + fabs(im[i]);
        if (d > err)
            err = d;
        hash_f64(&h, re[i]);
    }
    printf("fft 2^%" PRId64 " x%" PRId64 ": peak |X|^2 %.6e round-trip error %.3e\n", m, reps,
           peak, err);
    print_checksum(&h);
    return 0;
}
