/*
 * 2mm: D = alpha * A * B * C + beta * D, as PolyBench's 2mm (two chained
 * matrix products through a temporary). Usage: 2mm -s N.
 */
#include "bench_common.h"

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 's', 64);
    if (n < 1) {
        fprintf(stderr, "usage: 2mm -s N\n");
        return 2;
    }
    double alpha = 1.5, beta = 1.2;
    size_t sz = (size_t)(n * n) * sizeof(double);
    double *A = (double *)xmalloc(sz), *B = (double *)xmalloc(sz), *C = (double *)xmalloc(sz);
    double *D = (double *)xmalloc(sz), *T = (double *)xmalloc(sz);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            A[i * n + j] = (double)((i * j + 1) % n) / (double)n;
            B[i * n + j] = (double)(i * (j + 1) % n) / (double)n;
            C[i * n + j] = (double)((i * (j + 3) + 1) % n) / (double)n;
            D[i * n + j] = (double)(i * (j + 2) % n) / (double)n;
        }
    /* T = alpha * A * B */
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < n; j++)
            T[i * n + j] = 0.0;
        for (int64_t k = 0; k < n; k++) {
            double a = alpha * A[i * n + k];
            for (int64_t j = 0; j < n; j++)
                T[i * n + j] += a * B[k * n + j];
        }
    }
    /* D = beta * D + T * C */
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < n; j++)
            D[i * n + j] *= beta;
        for (int64_t k = 0; k < n; k++) {
            double t = T[i * n + k];
            for (int64_t j = 0; j < n; j++)
                D[i * n + j] += t * C[k * n + j];
        }
    }
    hash_t h = HASH_INIT;
    double sum = 0.0;
    for (int64_t i = 0; i < n * n; i++) {
        hash_f64(&h, D[i]);
        sum += D[i];
    }
    printf("2mm %" PRId64 "x%" PRId64 ": sum %.6e\n", n, n, sum);
    print_checksum(&h);
    return 0;
}
