/*
 * bfs: direction-optimising breadth-first search (Beamer et al.), in the
 * style of the GAP benchmark suite's bfs. Usage: bfs -g SCALE -n TRIALS.
 *
 * Each trial searches from a random source, switching between top-down and
 * bottom-up steps with GAP's heuristics (alpha 15, beta 18). The checksum
 * covers the depth of every vertex in every trial, which does not depend on
 * which parent a step happened to pick.
 */
#include "gap_graph.h"

#define ALPHA 15
#define BETA 18

/* One search; fills depth[] (-1 for unreached), returns vertices reached. */
static int64_t bfs(const graph_t *g, int32_t source, int32_t *parent, int32_t *depth,
                   int32_t *queue, uint8_t *front, uint8_t *next) {
    int32_t n = g->n;
    for (int32_t v = 0; v < n; v++) {
        parent[v] = -1;
        depth[v] = -1;
    }
    parent[source] = source;
    depth[source] = 0;
    int64_t qhead = 0, qtail = 0;
    queue[qtail++] = source;
    int64_t edges_to_check = g->m;
    int64_t scout = g->offs[source + 1] - g->offs[source];
    int32_t level = 0;
    int64_t reached = 1;
    while (qhead < qtail) {
        if (scout > edges_to_check / ALPHA) {
            /* bottom-up: every unvisited vertex looks for a parent in the frontier */
            memset(front, 0, (size_t)n);
            for (int64_t i = qhead; i < qtail; i++)
                front[queue[i]] = 1;
            int64_t awake = qtail - qhead, old_awake;
            qhead = qtail;
            do {
                old_awake = awake;
                awake = 0;
                memset(next, 0, (size_t)n);
                level++;
                for (int32_t v = 0; v < n; v++) {
                    if (parent[v] >= 0)
                        continue;
                    for (int64_t k = g->offs[v]; k < g->offs[v + 1]; k++) {
                        int32_t u = g->nbrs[k];
                        if (front[u]) {
                            parent[v] = u;
                            depth[v] = level;
                            next[v] = 1;
                            awake++;
                            break;
                        }
                    }
                }
                uint8_t *t = front;
                front = next;
                next = t;
                reached += awake;
            } while (awake >= old_awake || awake > n / BETA);
            /* back to top-down with the current frontier as the queue */
            qhead = qtail = 0;
            for (int32_t v = 0; v < n; v++)
                if (front[v])
                    queue[qtail++] = v;
            scout = 1;
        } else {
            /* top-down step */
            edges_to_check -= scout;
            scout = 0;
            int64_t end = qtail;
            level++;
            for (int64_t i = qhead; i < end; i++) {
                int32_t u = queue[i];
                for (int64_t k = g->offs[u]; k < g->offs[u + 1]; k++) {
                    int32_t v = g->nbrs[k];
                    if (parent[v] < 0) {
                        parent[v] = u;
                        depth[v] = level;
                        queue[qtail++] = v;
                        scout += g->offs[v + 1] - g->offs[v];
                        reached++;
                    }
                }
            }
            qhead = end;
        }
    }
    return reached;
}

int main(int argc, char **argv) {
    int scale, trials;
    gap_args(argc, argv, &scale, &trials, 10);
    graph_t g = gap_make_graph(scale);
    int32_t n = g.n;
    int32_t *parent = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    int32_t *depth = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    int32_t *queue = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    uint8_t *front = (uint8_t *)xmalloc((size_t)n);
    uint8_t *next = (uint8_t *)xmalloc((size_t)n);
    rng_t rng = {GAP_SEED + 1};
    hash_t h = HASH_INIT;
    hash_u64(&h, (uint64_t)g.m);
    for (int t = 0; t < trials; t++) {
        int32_t s = gap_pick_source(&g, &rng);
        int64_t reached = bfs(&g, s, parent, depth, queue, front, next);
        int64_t sum = 0;
        int32_t maxd = 0;
        for (int32_t v = 0; v < n; v++) {
            hash_u64(&h, (uint64_t)(uint32_t)depth[v]);
            if (depth[v] > 0)
                sum += depth[v];
            if (depth[v] > maxd)
                maxd = depth[v];
        }
        printf("trial %d: source %d reached %" PRId64 " depth-sum %" PRId64 " max-depth %d\n", t,
               s, reached, sum, maxd);
    }
    printf("graph: %d vertices, %" PRId64 " directed edges\n", n, g.m);
    print_checksum(&h);
    gap_free_graph(&g);
    return 0;
}
