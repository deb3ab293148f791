/*
 * pr: PageRank by pull-direction power iteration, in the style of the GAP
 * benchmark suite's pr (damping 0.85, tolerance 1e-4, at most 20 iterations,
 * single-precision scores). Usage: pr -g SCALE -n TRIALS.
 *
 * Every trial recomputes the ranks from scratch; the checksum covers the
 * exact bits of every score of every trial.
 */
#include "gap_graph.h"

#define DAMP 0.85f
#define TOL 1e-4f
#define MAX_ITERS 20

static int pagerank(const graph_t *g, float *score, float *contrib) {
    int32_t n = g->n;
    const float init = 1.0f / (float)n;
    const float base = (1.0f - DAMP) / (float)n;
    for (int32_t v = 0; v < n; v++)
        score[v] = init;
    int iter;
    for (iter = 0; iter < MAX_ITERS; iter++) {
        for (int32_t v = 0; v < n; v++) {
            int64_t d = g->offs[v + 1] - g->offs[v];
            contrib[v] = d ? score[v] / (float)d : 0.0f;
        }
        float error = 0.0f;
        for (int32_t u = 0; u < n; u++) {
            float total = 0.0f;
            for (int64_t k = g->offs[u]; k < g->offs[u + 1]; k++)
                total += contrib[g->nbrs[k]];
            float old = score[u];
            score[u] = base + DAMP * total;
            float diff = score[u] - old;
            error += diff < 0 ? -diff : diff;
        }
        if (error < TOL) {
            iter++;
            break;
        }
    }
    return iter;
}

int main(int argc, char **argv) {
    int scale, trials;
    gap_args(argc, argv, &scale, &trials, 10);
    graph_t g = gap_make_graph(scale);
    float *score = (float *)xmalloc((size_t)g.n * sizeof(float));
    float *contrib = (float *)xmalloc((size_t)g.n * sizeof(float));
    hash_t h = HASH_INIT;
    hash_u64(&h, (uint64_t)g.m);
    for (int t = 0; t < trials; t++) {
        int iters = pagerank(&g, score, contrib);
        double sum = 0.0;
        float best = 0.0f;
        int32_t arg = 0;
        for (int32_t v = 0; v < g.n; v++) {
            hash_f32(&h, score[v]);
            sum += score[v];
            if (score[v] > best) {
                best = score[v];
                arg = v;
            }
        }
        printf("trial %d: %d iterations, sum %.6e, top vertex %d score %.6e\n", t, iters, sum, arg,
               (double)best);
    }
    printf("graph: %d vertices, %" PRId64 " directed edges\n", g.n, g.m);
    print_checksum(&h);
    gap_free_graph(&g);
    return 0;
}
