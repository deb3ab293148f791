/*
 * floyd-warshall: all-pairs shortest paths on a random dense graph with
 * integer weights, as PolyBench's floyd-warshall. Usage: floyd-warshall
 * -s N.
 */
#include "bench_common.h"

#define NO_EDGE 999999

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 's', 64);
    if (n < 1) {
        fprintf(stderr, "usage: floyd-warshall -s N\n");
        return 2;
    }
    int32_t *P = (int32_t *)xmalloc((size_t)(n * n) * sizeof(int32_t));
    rng_t rng = {777};
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            uint64_t r = rng_next(&rng);
            /* about one pair in three has a direct edge */
            P[i * n + j] = i == j ? 0 : (r % 3 == 0 ? (int32_t)(1 + (r >> 8) % 1000) : NO_EDGE);
        }
    for (int64_t k = 0; k < n; k++) {
        const int32_t *pk = P + k * n;
        for (int64_t i = 0; i < n; i++) {
            int32_t *pi = P + i * n;
            int32_t pik = pi[k];
            for (int64_t j = 0; j < n; j++) {
                int32_t via = pik + pk[j];
                if (via < pi[j])
                    pi[j] = via;
            }
        }
    }
    hash_t h = HASH_INIT;
    int64_t sum = 0;
    for (int64_t i = 0; i < n * n; i++) {
        hash_u64(&h, (uint64_t)(uint32_t)P[i]);
        sum += P[i];
    }
    printf("floyd-warshall %" PRId64 " nodes: distance sum %" PRId64 "\n", n, sum);
    print_checksum(&h);
    return 0;
}
