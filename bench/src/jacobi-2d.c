/*
 * jacobi-2d: five-point Jacobi stencil on an N x N grid for T time steps,
 * as PolyBench's jacobi-2d. Usage: jacobi-2d -s N -t STEPS.
 */
#include "bench_common.h"

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 's', 64), steps = arg_int(argc, argv, 't', 10);
    if (n < 3 || steps < 1) {
        fprintf(stderr, "usage: jacobi-2d -s N (>= 3) -t STEPS\n");
        return 2;
    }
    double *A = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    double *B = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            A[i * n + j] = ((double)i * (double)(j + 2) + 2.0) / (double)n;
            B[i * n + j] = ((double)i * (double)(j + 3) + 3.0) / (double)n;
        }
    for (int64_t t = 0; t < steps; t++) {
        for (int64_t i = 1; i < n - 1; i++)
            for (int64_t j = 1; j < n - 1; j++)
                B[i * n + j] = 0.2 * (A[i * n + j] + A[i * n + j - 1] + A[i * n + j + 1] +
                                      A[(i + 1) * n + j] + A[(i - 1) * n + j]);
        for (int64_t i = 1; i < n - 1; i++)
            for (int64_t j = 1; j < n - 1; j++)
                A[i * n + j] = 0.2 * (B[i * n + j] + B[i * n + j - 1] + B[i * n + j + 1] +
                                      B[(i + 1) * n + j] + B[(i - 1) * n + j]);
    }
    hash_t h = HASH_INIT;
    double sum = 0.0;
    for (int64_t i = 0; i < n * n; i++) {
        hash_f64(&h, A[i]);
        sum += A[i];
    }
    printf("jacobi-2d %" PRId64 "x%" PRId64 " %" PRId64 " steps: sum %.6e\n", n, n, steps, sum);
    print_checksum(&h);
    return 0;
}
