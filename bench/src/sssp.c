/*
 * sssp: single-source shortest paths by delta-stepping (run serially), in
 * the style of the GAP benchmark suite's sssp, on the Kronecker graph with
 * integer weights in [1, 255]. Usage: sssp -g SCALE -n TRIALS [-d DELTA].
 *
 * The checksum covers every distance of every trial (unique whatever the
 * processing order).
 */
#include "gap_graph.h"

#define INF INT32_MAX

typedef struct {
    int32_t *v;
    int64_t len, cap;
} vec_t;

static void vec_push(vec_t *b, int32_t x) {
    if (b->len == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        int32_t *p = (int32_t *)realloc(b->v, (size_t)b->cap * sizeof(int32_t));
        if (p == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(3);
        }
        b->v = p;
    }
    b->v[b->len++] = x;
}

static void sssp(const graph_t *g, int32_t source, int32_t delta, int32_t *dist, vec_t **buckets,
                 int64_t *nbuckets) {
    for (int32_t v = 0; v < g->n; v++)
        dist[v] = INF;
    dist[source] = 0;
    for (int64_t i = 0; i < *nbuckets; i++)
        (*buckets)[i].len = 0;
    vec_t cur = {NULL, 0, 0};
    vec_push(&(*buckets)[0], source);
    for (int64_t b = 0; b < *nbuckets; b++) {
        while ((*buckets)[b].len > 0) {
            /* take the bucket's content: relaxations may refill it */
            vec_t tmp = cur;
            cur = (*buckets)[b];
            (*buckets)[b] = tmp;
            (*buckets)[b].len = 0;
            for (int64_t i = 0; i < cur.len; i++) {
                int32_t u = cur.v[i];
                if (dist[u] / delta != b)
                    continue; /* stale entry: settled in an earlier bucket */
                for (int64_t k = g->offs[u]; k < g->offs[u + 1]; k++) {
                    int32_t v = g->nbrs[k];
                    int32_t nd = dist[u] + gap_weight(u, v);
                    if (nd < dist[v]) {
                        dist[v] = nd;
                        int64_t nb = nd / delta;
                        if (nb >= *nbuckets) {
                            int64_t nn = nb * 2 + 1;
                            vec_t *p = (vec_t *)realloc(*buckets, (size_t)nn * sizeof(vec_t));
                            if (p == NULL) {
                                fprintf(stderr, "out of memory\n");
                                exit(3);
                            }
                            memset(p + *nbuckets, 0, (size_t)(nn - *nbuckets) * sizeof(vec_t));
                            *buckets = p;
                            *nbuckets = nn;
                        }
                        vec_push(&(*buckets)[nb], v);
                    }
                }
            }
        }
    }
    free(cur.v);
}

int main(int argc, char **argv) {
    int scale, trials;
    gap_args(argc, argv, &scale, &trials, 10);
    int32_t delta = (int32_t)arg_int(argc, argv, 'd', 32);
    if (delta < 1) {
        fprintf(stderr, "-d must be at least 1\n");
        return 2;
    }
    graph_t g = gap_make_graph(scale);
    int32_t *dist = (int32_t *)xmalloc((size_t)g.n * sizeof(int32_t));
    int64_t nbuckets = 16;
    vec_t *buckets = (vec_t *)xcalloc((size_t)nbuckets, sizeof(vec_t));
    rng_t rng = {GAP_SEED + 2};
    hash_t h = HASH_INIT;
    hash_u64(&h, (uint64_t)g.m);
    for (int t = 0; t < trials; t++) {
        int32_t s = gap_pick_source(&g, &rng);
        sssp(&g, s, delta, dist, &buckets, &nbuckets);
        int64_t reached = 0, sum = 0;
        int32_t maxd = 0;
        for (int32_t v = 0; v < g.n; v++) {
            hash_u64(&h, (uint64_t)(uint32_t)dist[v]);
            if (dist[v] != INF) {
                reached++;
                sum += dist[v];
                if (dist[v] > maxd)
                    maxd = dist[v];
            }
        }
        printf("trial %d: source %d reached %" PRId64 " dist-sum %" PRId64 " max-dist %d\n", t, s,
               reached, sum, maxd);
    }
    for (int64_t i = 0; i < nbuckets; i++)
        free(buckets[i].v);
    free(buckets);
    printf("graph: %d vertices, %" PRId64 " directed edges\n", g.n, g.m);
    print_checksum(&h);
    gap_free_graph(&g);
    return 0;
}
