/*
 * fannkuch-redux: the Computer Language Benchmarks Game's pancake-flipping
 * kernel over all permutations of N elements (checksum and maximum flips).
 * Usage: fannkuch-redux -n N.
 */
#include "bench_common.h"

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 'n', 7);
    if (n < 1 || n > 12) {
        fprintf(stderr, "usage: fannkuch-redux -n N (1..12)\n");
        return 2;
    }
    int32_t perm[16], perm1[16], count[16];
    int64_t checksum = 0;
    int32_t max_flips = 0, sign = 1;
    for (int32_t i = 0; i < n; i++)
        perm1[i] = i;
    int32_t r = (int32_t)n;
    for (;;) {
        while (r != 1) {
            count[r - 1] = r;
            r--;
        }
        for (int32_t i = 0; i < n; i++)
            perm[i] = perm1[i];
        int32_t flips = 0, k;
        while ((k = perm[0]) != 0) {
            for (int32_t i = 0, j = k; i < j; i++, j--) {
                int32_t t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            flips++;
        }
        if (flips > max_flips)
            max_flips = flips;
        checksum += sign * flips;
        sign = -sign;
        /* next permutation in the benchmark's rotation order */
        for (;;) {
            if (r == n) {
                hash_t h = HASH_INIT;
                hash_u64(&h, (uint64_t)checksum);
                hash_u64(&h, (uint64_t)max_flips);
                printf("%" PRId64 "\nPfannkuchen(%" PRId64 ") = %d\n", checksum, n, max_flips);
                print_checksum(&h);
                return 0;
            }
            int32_t p0 = perm1[0];
            for (int32_t i = 0; i < r; i++)
                perm1[i] = perm1[i + 1];
            perm1[r] = p0;
            if (--count[r] > 0)
                break;
            r++;
        }
    }
}
