/*
 * cc: connected components by Shiloach-Vishkin hooking and pointer jumping,
 * in the style of the GAP benchmark suite's cc_sv. Usage: cc -g SCALE -n
 * TRIALS.
 *
 * Labels are made canonical (each vertex gets the smallest vertex id of its
 * component) before hashing, so the checksum names the partition itself.
 */
#include "gap_graph.h"

static int shiloach_vishkin(const graph_t *g, int32_t *comp) {
    int32_t n = g->n;
    for (int32_t v = 0; v < n; v++)
        comp[v] = v;
    int rounds = 0, change = 1;
    while (change) {
        change = 0;
        rounds++;
        for (int32_t u = 0; u < n; u++) {
            for (int64_t k = g->offs[u]; k < g->offs[u + 1]; k++) {
                int32_t v = g->nbrs[k];
                int32_t cu = comp[u], cv = comp[v];
                if (cu == cv)
                    continue;
                int32_t hi = cu > cv ? cu : cv, lo = cu > cv ? cv : cu;
                if (comp[hi] == hi) {
                    change = 1;
                    comp[hi] = lo;
                }
            }
        }
        for (int32_t v = 0; v < n; v++)
            while (comp[v] != comp[comp[v]])
                comp[v] = comp[comp[v]];
    }
    return rounds;
}

int main(int argc, char **argv) {
    int scale, trials;
    gap_args(argc, argv, &scale, &trials, 10);
    graph_t g = gap_make_graph(scale);
    int32_t n = g.n;
    int32_t *comp = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    int32_t *minv = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    hash_t h = HASH_INIT;
    hash_u64(&h, (uint64_t)g.m);
    for (int t = 0; t < trials; t++) {
        int rounds = shiloach_vishkin(&g, comp);
        for (int32_t v = 0; v < n; v++)
            minv[v] = n;
        for (int32_t v = 0; v < n; v++)
            if (v < minv[comp[v]])
                minv[comp[v]] = v;
        int64_t ncomp = 0, biggest = 0;
        int32_t *size = (int32_t *)xcalloc((size_t)n, sizeof(int32_t));
        for (int32_t v = 0; v < n; v++) {
            int32_t c = minv[comp[v]];
            hash_u64(&h, (uint64_t)(uint32_t)c);
            if (c == v)
                ncomp++;
            if (++size[c] > biggest)
                biggest = size[c];
        }
        free(size);
        printf("trial %d: %d rounds, %" PRId64 " components, largest %" PRId64 "\n", t, rounds,
               ncomp, biggest);
    }
    printf("graph: %d vertices, %" PRId64 " directed edges\n", n, g.m);
    print_checksum(&h);
    gap_free_graph(&g);
    return 0;
}
