/*
 * spectral-norm: the Computer Language Benchmarks Game's spectral norm of
 * the infinite matrix A(i,j) = 1/((i+j)(i+j+1)/2+i+1), truncated to N x N,
 * by ten steps of the power method on A^T A. Usage: spectral-norm -n N.
 */
#include "bench_common.h"
#include <math.h>

static inline double a(int64_t i, int64_t j) { return 1.0 / (double)((i + j) * (i + j + 1) / 2 + i + 1); }

static void mul_av(int64_t n, const double *v, double *out) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < n; j++)
            s += a(i, j) * v[j];
        out[i] = s;
    }
}

static void mul_atv(int64_t n, const double *v, double *out) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < n; j++)
            s += a(j, i) * v[j];
        out[i] = s;
    }
}

static void mul_atav(int64_t n, const double *v, double *out, double *tmp) {
    mul_av(n, v, tmp);
    mul_atv(n, tmp, out);
}

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 'n', 100);
    if (n < 1 || n > 1000000) {
        fprintf(stderr, "usage: spectral-norm -n N\n");
        return 2;
    }
    double *u = (double *)xmalloc((size_t)n * sizeof(double));
    double *v = (double *)xmalloc((size_t)n * sizeof(double));
    double *tmp = (double *)xmalloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        u[i] = 1.0;
    for (int i = 0; i < 10; i++) {
        mul_atav(n, u, v, tmp);
        mul_atav(n, v, u, tmp);
    }
    double vbv = 0.0, vv = 0.0;
    for (int64_t i = 0; i < n; i++) {
        vbv += u[i] * v[i];
        vv += v[i] * v[i];
    }
    double norm = sqrt(vbv / vv);
    hash_t h = HASH_INIT;
    hash_f64(&h, norm);
    printf("%.9f\n", norm);
    print_checksum(&h);
    return 0;
}
