/* Indirect calls: a table of function pointers, qsort with a comparator,
 * and callbacks that call back. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

typedef uint32_t (*op_fn)(uint32_t, uint32_t);
__attribute__((noinline)) static uint32_t op_add(uint32_t a, uint32_t b) { return a + b; }
__attribute__((noinline)) static uint32_t op_xor(uint32_t a, uint32_t b) { return a ^ (b * 2654435761u); }
__attribute__((noinline)) static uint32_t op_rot(uint32_t a, uint32_t b) { return (a << (b & 31)) | (a >> ((32 - (b & 31)) & 31)); }
__attribute__((noinline)) static uint32_t op_mul(uint32_t a, uint32_t b) { return a * (b | 1); }
static op_fn ops[4] = {op_add, op_xor, op_rot, op_mul};

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef void (*visit_fn)(uint32_t, void *);
__attribute__((noinline)) static void each(const uint32_t *v, int n, visit_fn f, void *ctx) {
    for (int i = 0; i < n; i++) f(v[i], ctx);
}
static void sum_visit(uint32_t x, void *ctx) { *(uint64_t *)ctx += x % 1000; }

int main(void) {
    uint32_t acc = 1;
    for (uint32_t i = 0; i < 100000; i++) {
        acc = ops[(acc ^ i) & 3](acc, i);
        if (i % 25000 == 24999) printf("acc after %u: %08x\n", i + 1, acc);
    }
    enum { M = 3000 };
    static uint32_t v[M];
    uint32_t x = 12345;
    for (int i = 0; i < M; i++) { x = x * 1103515245u + 12345u; v[i] = x >> 8; }
    qsort(v, M, sizeof v[0], cmp_u32);
    printf("sorted: min %u median %u max %u\n", v[0], v[M / 2], v[M - 1]);
    uint64_t s = 0;
    each(v, M, sum_visit, &s);
    printf("visit sum: %llu\n", (unsigned long long)s);
    return 0;
}
