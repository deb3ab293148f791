/*
 * bc: betweenness centrality by Brandes' algorithm, in the style of the GAP
 * benchmark suite's bc. Usage: bc -g SCALE -n TRIALS [-i SOURCES].
 *
 * Each trial accumulates the dependencies of SOURCES random sources (one by
 * default, as GAP) and normalises the scores by their maximum. The checksum
 * covers the exact bits of every normalised score of every trial.
 */
#include "gap_graph.h"

static void brandes(const graph_t *g, int32_t source, double *score, double *sigma,
                    double *delta, int32_t *depth, int32_t *order) {
    int32_t n = g->n;
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
        if (u != source)
            score[u] += acc;
    }
}

int main(int argc, char **argv) {
    int scale, trials;
    gap_args(argc, argv, &scale, &trials, 10);
    int sources = (int)arg_int(argc, argv, 'i', 1);
    graph_t g = gap_make_graph(scale);
    int32_t n = g.n;
    double *score = (double *)xmalloc((size_t)n * sizeof(double));
    double *sigma = (double *)xmalloc((size_t)n * sizeof(double));
    double *delta = (double *)xmalloc((size_t)n * sizeof(double));
    int32_t *depth = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    int32_t *order = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    rng_t rng = {GAP_SEED + 3};
    hash_t h = HASH_INIT;
    hash_u64(&h, (uint64_t)g.m);
    for (int t = 0; t < trials; t++) {
        for (int32_t v = 0; v < n; v++)
            score[v] = 0.0;
        for (int i = 0; i < sources; i++)
            brandes(&g, gap_pick_source(&g, &rng), score, sigma, delta, depth, order);
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
    printf("graph: %d vertices, %" PRId64 " directed edges\n", n, g.m);
    print_checksum(&h);
    gap_free_graph(&g);
    return 0;
}
