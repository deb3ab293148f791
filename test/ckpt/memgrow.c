/* Memory growth: allocations that grow linear memory (memory.grow) in
 * steps between computations, so checkpoints see several sizes. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static uint32_t fill(uint8_t *p, size_t n, uint32_t seed) {
    uint32_t h = seed;
    for (size_t i = 0; i < n; i++) { h = h * 1664525u + 1013904223u; p[i] = (uint8_t)(h >> 24); }
    return h;
}

static uint32_t sum(const uint8_t *p, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i < n; i += 61) s = s * 31 + p[i];
    return s;
}

int main(void) {
    enum { STEPS = 6 };
    uint8_t *blocks[STEPS];
    size_t size = 256 * 1024;
    for (int i = 0; i < STEPS; i++, size *= 2) {
        blocks[i] = malloc(size);
        if (!blocks[i]) { printf("malloc failed\n"); return 1; }
        fill(blocks[i], size, (uint32_t)i);
        printf("block %d: %zu bytes, sum %08x, pages %zu\n", i, size, sum(blocks[i], size),
               (size_t)__builtin_wasm_memory_size(0));
    }
    free(blocks[1]);
    free(blocks[3]);
    blocks[1] = realloc(blocks[0], 3 * 1024 * 1024);
    printf("realloc sum %08x, pages %zu\n", sum(blocks[1], 256 * 1024), (size_t)__builtin_wasm_memory_size(0));
    uint32_t total = 0;
    for (int i = 1; i < STEPS; i++)
        if (i != 3) total ^= sum(blocks[i], 64 * 1024);
    printf("total %08x\n", total);
    return 0;
}
