/*
 * mg: multigrid V-cycles for the periodic 3-D Poisson problem, in the style
 * of the NAS parallel benchmarks' MG: the right-hand side is +1 at ten
 * random points and -1 at ten others, each V-cycle smooths (weighted
 * Jacobi), restricts the residual to a grid half as fine, recurses down to
 * 4^3 and prolongs the correction back. Usage: mg -s LOG2N -i ITERATIONS.
 */
#include "bench_common.h"
#include <math.h>

typedef struct {
    int32_t n; /* points per side */
    double *u, *f, *r, *t;
} level_t;

#define IDX(n, i, j, k) (((int64_t)(i) * (n) + (j)) * (n) + (k))

/* r = f - A u, with A the 7-point periodic Laplacian scaled by h^-2 = 1. */
static void residual(int32_t n, const double *u, const double *f, double *r) {
    for (int32_t i = 0; i < n; i++) {
        int32_t im = (i + n - 1) % n, ip = (i + 1) % n;
        for (int32_t j = 0; j < n; j++) {
            int32_t jm = (j + n - 1) % n, jp = (j + 1) % n;
            for (int32_t k = 0; k < n; k++) {
                int32_t km = (k + n - 1) % n, kp = (k + 1) % n;
                double au = 6.0 * u[IDX(n, i, j, k)] - u[IDX(n, im, j, k)] - u[IDX(n, ip, j, k)] -
                            u[IDX(n, i, jm, k)] - u[IDX(n, i, jp, k)] - u[IDX(n, i, j, km)] -
                            u[IDX(n, i, j, kp)];
                r[IDX(n, i, j, k)] = f[IDX(n, i, j, k)] - au;
            }
        }
    }
}

/* One weighted-Jacobi sweep (weight 2/3): u += (2/3) * r / 6. */
static void smooth(level_t *l) {
    int64_t size = (int64_t)l->n * l->n * l->n;
    residual(l->n, l->u, l->f, l->r);
    for (int64_t x = 0; x < size; x++)
        l->u[x] += l->r[x] * (1.0 / 9.0);
}

static void vcycle(level_t *lv, int depth, int nlev) {
    level_t *l = &lv[depth];
    if (depth == nlev - 1) {
        for (int s = 0; s < 20; s++)
            smooth(l);
        return;
    }
    smooth(l);
    smooth(l);
    residual(l->n, l->u, l->f, l->r);
    level_t *c = &lv[depth + 1];
    int32_t nc = c->n;
    /* restriction: sum of the 8 fine cells, scaled for h^2 (x4) / 8 */
    for (int32_t i = 0; i < nc; i++)
        for (int32_t j = 0; j < nc; j++)
            for (int32_t k = 0; k < nc; k++) {
                double s = 0.0;
                for (int a = 0; a < 2; a++)
                    for (int b = 0; b < 2; b++)
                        for (int d = 0; d < 2; d++)
                            s += l->r[IDX(l->n, 2 * i + a, 2 * j + b, 2 * k + d)];
                c->f[IDX(nc, i, j, k)] = s * 0.5;
                c->u[IDX(nc, i, j, k)] = 0.0;
            }
    vcycle(lv, depth + 1, nlev);
    /* prolongation: piecewise constant correction */
    for (int32_t i = 0; i < l->n; i++)
        for (int32_t j = 0; j < l->n; j++)
            for (int32_t k = 0; k < l->n; k++)
                l->u[IDX(l->n, i, j, k)] += c->u[IDX(nc, i / 2, j / 2, k / 2)];
    smooth(l);
    smooth(l);
}

int main(int argc, char **argv) {
    int64_t lg = arg_int(argc, argv, 's', 5), iters = arg_int(argc, argv, 'i', 4);
    if (lg < 2 || lg > 9 || iters < 1) {
        fprintf(stderr, "usage: mg -s LOG2N (2..9) -i ITERATIONS\n");
        return 2;
    }
    int nlev = (int)lg - 1; /* finest 2^lg down to 4 */
    level_t *lv = (level_t *)xcalloc((size_t)nlev, sizeof(level_t));
    for (int d = 0; d < nlev; d++) {
        int32_t n = (int32_t)1 << (lg - d);
        size_t sz = (size_t)n * n * n * sizeof(double);
        lv[d].n = n;
        lv[d].u = (double *)xcalloc(1, sz);
        lv[d].f = (double *)xcalloc(1, sz);
        lv[d].r = (double *)xcalloc(1, sz);
    }
    int32_t n = lv[0].n;
    rng_t rng = {31415};
    for (int p = 0; p < 20; p++) {
        int64_t at = (int64_t)rng_below(&rng, (uint64_t)n * n * n);
        lv[0].f[at] += p < 10 ? 1.0 : -1.0;
    }
    hash_t h = HASH_INIT;
    double norm = 0.0;
    int64_t size = (int64_t)n * n * n;
    for (int64_t it = 0; it < iters; it++) {
        vcycle(lv, 0, nlev);
        residual(n, lv[0].u, lv[0].f, lv[0].r);
        double s = 0.0;
        for (int64_t x = 0; x < size; x++)
            s += lv[0].r[x] * lv[0].r[x];
        norm = sqrt(s / (double)size);
        hash_f64(&h, norm);
        printf("iteration %" PRId64 ": residual norm %.6e\n", it, norm);
    }
    for (int64_t x = 0; x < size; x++)
        hash_f64(&h, lv[0].u[x]);
    print_checksum(&h);
    return 0;
}
