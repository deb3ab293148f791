/*
 * binary-trees: the Computer Language Benchmarks Game's allocation
 * benchmark: many short-lived complete binary trees from malloc and free,
 * and one long-lived tree. Usage: binary-trees -n MAXDEPTH.
 */
#include "bench_common.h"

typedef struct node {
    struct node *left, *right;
} node_t;

static node_t *make(int depth) {
    node_t *t = (node_t *)xmalloc(sizeof(node_t));
    if (depth > 0) {
        t->left = make(depth - 1);
        t->right = make(depth - 1);
    } else {
        t->left = t->right = NULL;
    }
    return t;
}

static int64_t check(const node_t *t) {
    return 1 + (t->left ? check(t->left) + check(t->right) : 0);
}

static void release(node_t *t) {
    if (t->left) {
        release(t->left);
        release(t->right);
    }
    free(t);
}

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 'n', 10);
    if (n < 0 || n > 30) {
        fprintf(stderr, "usage: binary-trees -n MAXDEPTH (0..30)\n");
        return 2;
    }
    int min_depth = 4, max_depth = (int)n < min_depth + 2 ? min_depth + 2 : (int)n;
    hash_t h = HASH_INIT;
    node_t *stretch = make(max_depth + 1);
    int64_t c = check(stretch);
    hash_u64(&h, (uint64_t)c);
    printf("stretch tree of depth %d\t check: %" PRId64 "\n", max_depth + 1, c);
    release(stretch);
    node_t *long_lived = make(max_depth);
    for (int d = min_depth; d <= max_depth; d += 2) {
        int64_t iters = (int64_t)1 << (max_depth - d + min_depth);
        int64_t sum = 0;
        for (int64_t i = 0; i < iters; i++) {
            node_t *t = make(d);
            sum += check(t);
            release(t);
        }
        hash_u64(&h, (uint64_t)sum);
        printf("%" PRId64 "\t trees of depth %d\t check: %" PRId64 "\n", iters, d, sum);
    }
    c = check(long_lived);
    hash_u64(&h, (uint64_t)c);
    printf("long lived tree of depth %d\t check: %" PRId64 "\n", max_depth, c);
    release(long_lived);
    print_checksum(&h);
    return 0;
}
