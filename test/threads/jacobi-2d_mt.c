/*
 * jacobi-2d_mt: bench/src/jacobi-2d.c (five-point Jacobi stencil, as
 * PolyBench's jacobi-2d) with the rows of each half step split over
 * OMP_NUM_THREADS pthreads and a pthread barrier between half steps. Every
 * element is computed by the same expression from the same inputs as in
 * the serial program, so the output is identical for the same arguments.
 * Usage: jacobi-2d_mt [-s N] [-t STEPS]; the defaults (-s 1000 -t 150) are
 * the test's size, not jacobi-2d.c's.
 */
#include <pthread.h>

#include "bench_common.h"
#include "threads_common.h"

static int64_t n, steps;
static double *A, *B;
static int nthreads;
static pthread_barrier_t barrier;

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    /* interior rows 1 .. n-2, split evenly */
    int64_t rows = n - 2;
    int64_t lo = 1 + rows * id / nthreads, hi = 1 + rows * (id + 1) / nthreads;
    for (int64_t t = 0; t < steps; t++) {
        for (int64_t i = lo; i < hi; i++)
            for (int64_t j = 1; j < n - 1; j++)
                B[i * n + j] = 0.2 * (A[i * n + j] + A[i * n + j - 1] + A[i * n + j + 1] +
                                      A[(i + 1) * n + j] + A[(i - 1) * n + j]);
        pthread_barrier_wait(&barrier);
        for (int64_t i = lo; i < hi; i++)
            for (int64_t j = 1; j < n - 1; j++)
                A[i * n + j] = 0.2 * (B[i * n + j] + B[i * n + j - 1] + B[i * n + j + 1] +
                                      B[(i + 1) * n + j] + B[(i - 1) * n + j]);
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(int argc, char **argv) {
    n = arg_int(argc, argv, 's', 1000);
    steps = arg_int(argc, argv, 't', 150);
    if (n < 3 || steps < 1) {
        fprintf(stderr, "usage: jacobi-2d_mt -s N (>= 3) -t STEPS\n");
        return 2;
    }
    nthreads = thread_count();
    A = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    B = (double *)xmalloc((size_t)(n * n) * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            A[i * n + j] = ((double)i * (double)(j + 2) + 2.0) / (double)n;
            B[i * n + j] = ((double)i * (double)(j + 3) + 3.0) / (double)n;
        }
    CHECK(pthread_barrier_init(&barrier, NULL, (unsigned)nthreads));
    pthread_t *tids = (pthread_t *)xmalloc((size_t)nthreads * sizeof(pthread_t));
    for (int i = 1; i < nthreads; i++)
        CHECK(pthread_create(&tids[i], NULL, worker, (void *)(intptr_t)i));
    worker((void *)(intptr_t)0);
    for (int i = 1; i < nthreads; i++)
        CHECK(pthread_join(tids[i], NULL));
    pthread_barrier_destroy(&barrier);
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
