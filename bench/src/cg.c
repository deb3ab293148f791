/*
 * cg: conjugate gradient in the style of the NAS parallel benchmarks' CG:
 * estimates the smallest eigenvalue of a random sparse symmetric positive
 * definite matrix by inverse power iteration, each step solving A z = x
 * with 25 unpreconditioned CG iterations. Usage: cg -s ROWS -k NONZEROS
 * -i ITERATIONS.
 */
#include "bench_common.h"
#include <math.h>

#define CG_ITERS 25

typedef struct {
    int32_t col;
    double val;
} entry_t;

typedef struct {
    int32_t n;
    int64_t *rowp;
    int32_t *col;
    double *val;
} csr_t;

/* Sparse symmetric matrix: k random off-diagonal entries per row mirrored
 * to keep symmetry, duplicates summed, diagonal made dominant. */
static csr_t make_matrix(int32_t n, int32_t k) {
    rng_t rng = {314159265};
    int64_t ne = (int64_t)n * k * 2;
    int32_t *ei = (int32_t *)xmalloc((size_t)ne * sizeof(int32_t));
    entry_t *ev = (entry_t *)xmalloc((size_t)ne * sizeof(entry_t));
    int64_t *cnt = (int64_t *)xcalloc((size_t)n + 1, sizeof(int64_t));
    int64_t m = 0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t t = 0; t < k; t++) {
            int32_t j = (int32_t)rng_below(&rng, (uint64_t)n);
            if (j == i)
                continue;
            double v = rng_unit(&rng) - 0.5;
            ei[m] = i;
            ev[m].col = j;
            ev[m].val = v;
            m++;
            ei[m] = j;
            ev[m].col = i;
            ev[m].val = v;
            m++;
        }
    for (int64_t e = 0; e < m; e++)
        cnt[ei[e] + 1]++;
    for (int32_t i = 0; i < n; i++)
        cnt[i + 1] += cnt[i];
    entry_t *rows = (entry_t *)xmalloc((size_t)m * sizeof(entry_t));
    int64_t *fill = (int64_t *)xmalloc((size_t)n * sizeof(int64_t));
    for (int32_t i = 0; i < n; i++)
        fill[i] = cnt[i];
    for (int64_t e = 0; e < m; e++)
        rows[fill[ei[e]]++] = ev[e];
    free(ei);
    free(ev);
    free(fill);
    csr_t a;
    a.n = n;
    a.rowp = (int64_t *)xmalloc(((size_t)n + 1) * sizeof(int64_t));
    a.col = (int32_t *)xmalloc(((size_t)m + (size_t)n) * sizeof(int32_t));
    a.val = (double *)xmalloc(((size_t)m + (size_t)n) * sizeof(double));
    int64_t w = 0;
    for (int32_t i = 0; i < n; i++) {
        entry_t *r = rows + cnt[i];
        int64_t len = cnt[i + 1] - cnt[i];
        /* stable insertion sort by column, so sums happen in one fixed order */
        for (int64_t x = 1; x < len; x++) {
            entry_t v = r[x];
            int64_t y = x - 1;
            while (y >= 0 && r[y].col > v.col) {
                r[y + 1] = r[y];
                y--;
            }
            r[y + 1] = v;
        }
        a.rowp[i] = w;
        double offsum = 0.0;
        int64_t diag_at = -1;
        for (int64_t x = 0; x < len; x++) {
            if (diag_at < 0 && r[x].col > i) {
                diag_at = w;
                a.col[w] = i;
                a.val[w++] = 0.0;
            }
            if (w > a.rowp[i] && a.col[w - 1] == r[x].col) {
                a.val[w - 1] += r[x].val;
            } else {
                a.col[w] = r[x].col;
                a.val[w++] = r[x].val;
            }
        }
        if (diag_at < 0) {
            diag_at = w;
            a.col[w] = i;
            a.val[w++] = 0.0;
        }
        for (int64_t x = a.rowp[i]; x < w; x++)
            if (x != diag_at)
                offsum += a.val[x] < 0 ? -a.val[x] : a.val[x];
        a.val[diag_at] = offsum + 0.1;
    }
    a.rowp[n] = w;
    free(rows);
    free(cnt);
    return a;
}

static void spmv(const csr_t *a, const double *x, double *y) {
    for (int32_t i = 0; i < a->n; i++) {
        double s = 0.0;
        for (int64_t k = a->rowp[i]; k < a->rowp[i + 1]; k++)
            s += a->val[k] * x[a->col[k]];
        y[i] = s;
    }
}

static double dot(const double *a, const double *b, int32_t n) {
    double s = 0.0;
    for (int32_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* CG_ITERS iterations of CG on A z = x from z = 0; returns ||x - A z||. */
static double conj_grad(const csr_t *a, const double *x, double *z, double *r, double *p,
                        double *q) {
    int32_t n = a->n;
    for (int32_t i = 0; i < n; i++) {
        z[i] = 0.0;
        r[i] = x[i];
        p[i] = x[i];
    }
    double rho = dot(r, r, n);
    for (int it = 0; it < CG_ITERS; it++) {
        spmv(a, p, q);
        double alpha = rho / dot(p, q, n);
        for (int32_t i = 0; i < n; i++) {
            z[i] += alpha * p[i];
            r[i] -= alpha * q[i];
        }
        double rho0 = rho;
        rho = dot(r, r, n);
        double beta = rho / rho0;
        for (int32_t i = 0; i < n; i++)
            p[i] = r[i] + beta * p[i];
    }
    spmv(a, z, q);
    double s = 0.0;
    for (int32_t i = 0; i < n; i++) {
        double d = x[i] - q[i];
        s += d * d;
    }
    return sqrt(s);
}



int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 's', 1400), k = arg_int(argc, argv, 'k', 7),
            iters = arg_int(argc, argv, 'i', 15);
    if (n < 2 || n > 100000000 || k < 1 || k > 1000 || iters < 1) {
        fprintf(stderr, "usage: cg -s ROWS -k NONZEROS -i ITERATIONS\n");
        return 2;
    }
    csr_t a = make_matrix((int32_t)n, (int32_t)k);
    double *x = (double *)xmalloc((size_t)n * sizeof(double));
    double *z = (double *)xmalloc((size_t)n * sizeof(double));
    double *r = (double *)xmalloc((size_t)n * sizeof(double));
    double *p = (double *)xmalloc((size_t)n * sizeof(double));
    double *q = (double *)xmalloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        x[i] = 1.0;
    hash_t h = HASH_INIT;
    double zeta = 0.0, rnorm = 0.0;
    for (int64_t it = 0; it < iters; it++) {
        rnorm = conj_grad(&a, x, z, r, p, q);
        double xz = dot(x, z, (int32_t)n);
        zeta = 1.0 / xz;
        double zn = sqrt(dot(z, z, (int32_t)n));
        for (int64_t i = 0; i < n; i++)
            x[i] = z[i] / zn;
        hash_f64(&h, zeta);
        hash_f64(&h, rnorm);
    }
    for (int64_t i = 0; i < n; i++)
        hash_f64(&h, x[i]);
    printf("cg n=%" PRId64 " nnz=%" PRId64 ": zeta %.10e residual %.6e\n", n, a.rowp[n], zeta,
           rnorm);
    print_checksum(&h);
    return 0;
}
