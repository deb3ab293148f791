/*
 * gemm_mt: bench/src/gemm.c (C = alpha * A * B + beta * C, as PolyBench's
 * gemm, same loop order) with the rows of C split over OMP_NUM_THREADS
 * pthreads. A row of C depends only on itself, on a row of A and on B, and
 * is computed in the serial program's order, so the output is identical
 * for the same arguments. Usage: gemm_mt [-s N] [-r REPS]; the defaults
 * (-s 600 -r 2) are the test's size, not gemm.c's.
 */
#include <pthread.h>

#include "bench_common.h"
#include "threads_common.h"

static int64_t n, reps;
static double alpha = 1.5, beta = 1.2;
static double *A, *B, *C;
static int nthreads;

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    int64_t lo = n * id / nthreads, hi = n * (id + 1) / nthreads;
    for (int64_t r = 0; r < reps; r++)
        for (int64_t i = lo; i < hi; i++) {
            for (int64_t j = 0; j < n; j++)
                C[i * n + j] *= beta;
            for (int64_t k = 0; k < n; k++) {
                double a = alpha * A[i * n + k];
                for (int64_t j = 0; j < n; j++)
                    C[i * n + j] += a * B[k * n + j];
            }
        }
    return NULL;
}

int main(int argc, char **argv) {
    n = arg_int(argc, argv, 's', 600);
    reps = arg_int(argc, argv, 'r', 2);
    if (n < 1 || reps < 1) {
        fprintf(stderr, "usage: gemm_mt -s N [-r REPS]\n");
        return 2;
    }
    nthreads = thread_count();
    A = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    B = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    C = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            C[i * n + j] = (double)((i * j + 1) % n) / (double)n;
            A[i * n + j] = (double)(i * (j + 1) % n) / (double)n;
            B[i * n + j] = (double)(i * (j + 2) % n) / (double)n;
        }
    pthread_t *tids = (pthread_t *)xmalloc((size_t)nthreads * sizeof(pthread_t));
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_create(&tids[i], NULL, worker, (void *)(intptr_t)i));
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_join(tids[i], NULL));
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
