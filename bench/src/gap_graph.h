/*
 * Graph generation and CSR construction shared by the GAP-style kernels
 * (bc, bfs, pr, cc, sssp).
 *
 * As in the GAP benchmark suite, `-g SCALE` generates a Kronecker (R-MAT)
 * graph with 2^SCALE vertices and 16 * 2^SCALE edges (A=0.57, B=C=0.19),
 * vertex ids permuted at random, then symmetrised into an undirected CSR
 * graph without self loops or duplicate edges. `-n TRIALS` is the number of
 * trials (each from a different random source where the kernel has one).
 * Edge weights (for sssp) are a hash of the unordered endpoint pair in
 * [1, 255], so both directions of an edge agree without storing weights
 * through the sort.
 */
#ifndef MVVM_BENCH_GAP_GRAPH_H
#define MVVM_BENCH_GAP_GRAPH_H

#include "bench_common.h"

#define GAP_DEGREE 16
#define GAP_SEED 27491095ULL

typedef struct {
    int32_t n;      /* vertices */
    int64_t m;      /* directed edge slots (twice the undirected edges) */
    int64_t *offs;  /* n + 1 offsets into nbrs */
    int32_t *nbrs;  /* sorted neighbour lists */
} graph_t;

/* Sorts a neighbour list in place: quicksort (median of three, recursing
 * into the smaller side) down to insertion sort below 24 elements. Written
 * here rather than taken from qsort() because glibc and wasi-libc (musl's
 * smoothsort) use different algorithms with very different speeds, which
 * would make the benchmark compare C libraries instead of code generators. */
static inline void sort_i32(int32_t *a, int64_t n) {
    while (n >= 24) {
        int32_t x = a[0], y = a[n / 2], z = a[n - 1];
        int32_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int64_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i >= j)
                break;
            int32_t t = a[i];
            a[i] = a[j];
            a[j] = t;
            i++;
            j--;
        }
        /* a[0..j] <= pivot <= a[j+1..n) */
        int64_t left = j + 1;
        if (left < n - left) {
            sort_i32(a, left);
            a += left;
            n -= left;
        } else {
            sort_i32(a + left, n - left);
            n = left;
        }
    }
    for (int64_t i = 1; i < n; i++) {
        int32_t v = a[i];
        int64_t j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

/* Weight of the undirected edge {u, v}, in [1, 255]. */
static inline int32_t gap_weight(int32_t u, int32_t v) {
    uint64_t a = (uint64_t)(uint32_t)(u < v ? u : v), b = (uint64_t)(uint32_t)(u < v ? v : u);
    uint64_t z = (a << 32 | b) * 0x9e3779b97f4a7c15ULL;
    z ^= z >> 29;
    z *= 0xbf58476d1ce4e5b9ULL;
    z ^= z >> 32;
    return (int32_t)(1 + z % 255);
}

static inline graph_t gap_make_graph(int scale) {
    if (scale < 1 || scale > 26) {
        fprintf(stderr, "scale must be in 1..26\n");
        exit(2);
    }
    int32_t n = (int32_t)1 << scale;
    int64_t ne = (int64_t)n * GAP_DEGREE;
    int32_t *src = (int32_t *)xmalloc((size_t)ne * sizeof(int32_t));
    int32_t *dst = (int32_t *)xmalloc((size_t)ne * sizeof(int32_t));
    rng_t rng = {GAP_SEED};

    /* R-MAT quadrant thresholds on 32-bit draws. */
    const uint64_t ta = (uint64_t)(0.57 * 4294967296.0);
    const uint64_t tb = (uint64_t)(0.76 * 4294967296.0);
    const uint64_t tc = (uint64_t)(0.95 * 4294967296.0);
    for (int64_t e = 0; e < ne; e++) {
        int32_t u = 0, v = 0;
        uint64_t r = 0;
        for (int d = 0; d < scale; d++) {
            /* one 64-bit draw gives the quadrants of two levels */
            if ((d & 1) == 0)
                r = rng_next(&rng);
            uint64_t q = (d & 1) ? r >> 32 : r & 0xffffffffULL;
            int ubit = q >= tb, vbit = (q >= ta && q < tb) || q >= tc;
            u = (u << 1) | ubit;
            v = (v << 1) | vbit;
        }
        src[e] = u;
        dst[e] = v;
    }
    /* random permutation of vertex ids (Fisher-Yates) */
    int32_t *perm = (int32_t *)xmalloc((size_t)n * sizeof(int32_t));
    for (int32_t i = 0; i < n; i++)
        perm[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)rng_below(&rng, (uint64_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int64_t e = 0; e < ne; e++) {
        src[e] = perm[src[e]];
        dst[e] = perm[dst[e]];
    }
    free(perm);

    /* symmetrise into CSR */
    int64_t *deg = (int64_t *)xcalloc((size_t)n + 1, sizeof(int64_t));
    for (int64_t e = 0; e < ne; e++) {
        if (src[e] == dst[e])
            continue;
        deg[src[e]]++;
        deg[dst[e]]++;
    }
    int64_t *offs = (int64_t *)xmalloc(((size_t)n + 1) * sizeof(int64_t));
    offs[0] = 0;
    for (int32_t i = 0; i < n; i++)
        offs[i + 1] = offs[i] + deg[i];
    int32_t *nbrs = (int32_t *)xmalloc((size_t)offs[n] * sizeof(int32_t) + 4);
    for (int32_t i = 0; i < n; i++)
        deg[i] = offs[i];
    for (int64_t e = 0; e < ne; e++) {
        if (src[e] == dst[e])
            continue;
        nbrs[deg[src[e]]++] = dst[e];
        nbrs[deg[dst[e]]++] = src[e];
    }
    free(src);
    free(dst);
    /* sort and deduplicate each list, compacting in place */
    int64_t w = 0;
    for (int32_t i = 0; i < n; i++) {
        int64_t b = offs[i], e = offs[i + 1];
        sort_i32(nbrs + b, e - b);
        offs[i] = w;
        for (int64_t k = b; k < e; k++) {
            if (k > b && nbrs[k] == nbrs[k - 1])
                continue;
            nbrs[w++] = nbrs[k];
        }
    }
    offs[n] = w;
    free(deg);
    graph_t g = {n, w, offs, nbrs};
    return g;
}

static inline void gap_free_graph(graph_t *g) {
    free(g->offs);
    free(g->nbrs);
}

/* A random vertex with at least one neighbour, as GAP picks its sources. */
static inline int32_t gap_pick_source(const graph_t *g, rng_t *rng) {
    for (;;) {
        int32_t v = (int32_t)rng_below(rng, (uint64_t)g->n);
        if (g->offs[v + 1] > g->offs[v])
            return v;
    }
}

/* Common command line of the graph kernels: -g SCALE -n TRIALS. */
static inline void gap_args(int argc, char **argv, int *scale, int *trials, int def_scale) {
    *scale = (int)arg_int(argc, argv, 'g', def_scale);
    *trials = (int)arg_int(argc, argv, 'n', 1);
    if (*trials < 1) {
        fprintf(stderr, "-n must be at least 1\n");
        exit(2);
    }
}

#endif
