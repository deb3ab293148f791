/*
 * gemm: C = alpha * A * B + beta * C, as PolyBench's gemm (same loop order
 * and initialisation). Usage: gemm -s N [-r REPS].
 */
#include "bench_common.h"

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 's', 64), reps = arg_int(argc, argv, 'r', 1);
    if (n < 1 || reps < 1) {
        fprintf(stderr, "usage: gemm -s N [-r REPS]\n");
        return 2;
    }
    double alpha = 1.5, beta = 1.2;
    double *A = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    double *B = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    double *C = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            C[i * n + j] = (double)((i * j + 1) % n) / (double)n;
            A[i * n + j] = (double)(i * (j + 1) % n) / (double)n;
            B[i * n + j] = (double)(i * (j + 2) % n) / (double)n;
        }
    for (int64_t r = 0; r < reps; r++)
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < n; j++)
                C[i * n + j] *= beta;
            for (int64_t k = 0; k < n; k++) {
                double a = alpha * A[i * n + k];
                for (int64_t j = 0; j < n; j++)
                    C[i * n + j] += a * B[k * n + j];
            }
        }
    hash_t h = HASH_INIT;
    double sum = 0.0;
    for (int64_t i = 0; i < n * n; i++) {
        hash_f64(&h, C[i]);
        sum += C[i];
    }
    printf("gemm %" PRId64 "x%" PRId64 " x%" PRId64 ": sum %.6e\n", n, n, reps, sum);
    print_checksum(&h);
    return 0;
}
