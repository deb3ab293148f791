/*
 * bc_mt: bench/src/bc.c (betweenness centrality, Brandes) split over
 * OMP_NUM_THREADS pthreads, with the same output as the serial program for
 * the same arguments. Usage: bc_mt [-g SCALE] [-n TRIALS] [-i SOURCES]; the
 * defaults (-g 14 -n 2 -i 64) are the test's size, not bc.c's.
 *
 * The serial program adds each source's dependencies to the scores in
 * source order. Here the sources of a trial are taken in batches of one per
 * thread: each thread runs Brandes from its source into its own dependency
 * array (phase 1), then after a barrier every thread adds the batch's
 * arrays, in source order, into its own slice of the vertices (phase 2).
 * Every score gets the same additions in the same order as in the serial
 * program, so the results are bit-identical whatever the thread count.
 */
#include <pthread.h>

#include "gap_graph.h"
#include "threads_common.h"

typedef struct {
    double *sigma, *delta;
    int32_t *depth, *order;
} scratch_t;

/* As brandes() in bc.c, but leaves the dependencies in `delta` instead of
 * adding them to the scores. */
static void dependencies(const graph_t *g, int32_t source, scratch_t *s) {
    int32_t n = g->n;
    double *sigma = s->sigma, *delta = s->delta;
    int32_t *depth = s->depth, *order = s->order;
    for (int32_t v = 0; v < n; v++) {
        sigma[v] = 0.0;
        delta[v] = 0.0;
        depth[v] = -1;
    }
    sigma[source] = 1.0;
    depth[source] = 0;
    int64_t head = 0, tail = 0;
    order[tail++] = source;
    while (head < tail) {
        int32_t u = order[head++];
        for (int64_t k = g->offs[u]; k < g->offs[u + 1]; k++) {
            int32_t v = g->nbrs[k];
            if (depth[v] < 0) {
                depth[v] = depth[u] + 1;
                order[tail++] = v;
            }
            if (depth[v] == depth[u] + 1)
                sigma[v] += sigma[u];
        }
    }
    for (int64_t i = tail - 1; i >= 0; i--) {
        int32_t u = order[i];
        double acc = 0.0;
        for (int64_t k = g->offs[u]; k < g->offs[u + 1]; k++) {
            int32_t w = g->nbrs[k];
            if (depth[w] == depth[u] + 1)
                acc += sigma[u] / sigma[w] * (1.0 + delta[w]);
        }
        delta[u] = acc;
    }
    /* Vertices never reached keep delta 0.0: adding +0.0 to a score (never
     * -0.0, the scores start at +0.0 and only grow) leaves it unchanged,
     * exactly as the serial program not touching it. */
}

static graph_t g;
static int nthreads, sources;
static int32_t *picked;   /* the sources of the current trial, in order */
static double *score;
static scratch_t *scratch; /* one per thread */
static pthread_barrier_t barrier;
static int trials;

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    int32_t n = g.n;
    int32_t lo = (int32_t)((int64_t)n * id / nthreads);
    int32_t hi = (int32_t)((int64_t)n * (id + 1) / nthreads);
    for (int t = 0; t < trials; t++) {
        /* main: picks the sources and clears the scores */
        pthread_barrier_wait(&barrier);
        for (int b = 0; b < sources; b += nthreads) {
            int in_batch = sources - b < nthreads ? sources - b : nthreads;
            if (id < in_batch)
                dependencies(&g, picked[b + id], &scratch[id]);
            pthread_barrier_wait(&barrier);
            for (int j = 0; j < in_batch; j++) {
                const double *d = scratch[j].delta;
                int32_t src = picked[b + j];
                for (int32_t v = lo; v < hi; v++)
                    if (v != src)
                        score[v] += d[v];
            }
            pthread_barrier_wait(&barrier);
        }
        /* main: normalises, hashes and prints */
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int scale;
    gap_args(argc, argv, &scale, &trials, 14);
    if (arg_int(argc, argv, 'n', 0) == 0)
        trials = 2;
    sources = (int)arg_int(argc, argv, 'i', 64);
    if (sources < 1) {
        fprintf(stderr, "-i must be at least 1\n");
        return 2;
    }
    nthreads = thread_count();
    g = gap_make_graph(scale);
    int32_t n = g.n;
    score = (double *)xmalloc((size_t)n * sizeof(double));
    picked = (int32_t *)xmalloc((size_t)sources * sizeof(int32_t));
    scratch = (scratch_t *)xmalloc((size_t)nthreads * sizeof(scratch_t));
    for (int i = 0; i < nthreads; i++) {
        scratch[i].sigma = (double *)xmalloc((size_t)n * sizeof(double));
        scratch[i].delta = (double *)xmalloc((size_t)n * sizeof(double));
        scratch[i].depth = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
        scratch[i].order = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    }
    CHECK(pthread_barrier_init(&barrier, NULL, (unsigned)nthreads + 1));
    pthread_t *tids = (pthread_t *)xmalloc((size_t)nthreads * sizeof(pthread_t));
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_create(&tids[i], NULL, worker, (void *)(intptr_t)i));

    rng_t rng = {GAP_SEED + 3};
    hash_t h = HASH_INIT;
    hash_u64(&h, (uint64_t)g.m);
    for (int t = 0; t < trials; t++) {
        for (int32_t v = 0; v < n; v++)
            score[v] = 0.0;
        for (int i = 0; i < sources; i++)
            picked[i] = gap_pick_source(&g, &rng);
        pthread_barrier_wait(&barrier);
        for (int b = 0; b < sources; b += nthreads) {
            pthread_barrier_wait(&barrier);
            pthread_barrier_wait(&barrier);
        }
        pthread_barrier_wait(&barrier);
        double biggest = 0.0;
        int32_t arg = 0;
        for (int32_t v = 0; v < n; v++)
            if (score[v] > biggest) {
                biggest = score[v];
                arg = v;
            }
        for (int32_t v = 0; v < n; v++) {
            if (biggest > 0.0)
                score[v] /= biggest;
            hash_f64(&h, score[v]);
        }
        printf("trial %d: top vertex %d raw score %.6e\n", t, arg, biggest);
    }
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_join(tids[i], NULL));
    pthread_barrier_destroy(&barrier);
    printf("graph: %d vertices, %" PRId64 " directed edges\n", n, g.m);
    print_checksum(&h);
    gap_free_graph(&g);
    return 0;
}
