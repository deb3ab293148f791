/*
 * lu: in-place LU decomposition without pivoting, as PolyBench's lu, of a
 * random diagonally dominant matrix (so no pivoting is needed). Usage:
 * lu -s N.
 */
#include "bench_common.h"

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 's', 64);
    if (n < 1) {
        fprintf(stderr, "usage: lu -s N\n");
        return 2;
    }
    double *A = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    rng_t rng = {12345};
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            A[i * n + j] = rng_unit(&rng) - 0.5 + (i == j ? (double)n : 0.0);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < i; j++) {
            double s = A[i * n + j];
            for (int64_t k = 0; k < j; k++)
                s -= A[i * n + k] * A[k * n + j];
            A[i * n + j] = s / A[j * n + j];
        }
        for (int64_t j = i; j < n; j++) {
            double s = A[i * n + j];
            for (int64_t k = 0; k < i; k++)
                s -= A[i * n + k] * A[k * n + j];
            A[i * n + j] = s;
        }
    }
    hash_t h = HASH_INIT;
    double logdet = 0.0;
    for (int64_t i = 0; i < n * n; i++)
        hash_f64(&h, A[i]);
    for (int64_t i = 0; i < n; i++)
        logdet += bm_log(A[i * n + i] < 0 ? -A[i * n + i] : A[i * n + i]);
    printf("lu %" PRId64 "x%" PRId64 ": log|det| %.6e\n", n, n, logdet);
    print_checksum(&h);
    return 0;
}
